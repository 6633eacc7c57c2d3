import { describe, expect, it } from 'vitest';
import {
  CriuReqType,
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  RpcDecodeError,
} from '../src/index.js';

describe('criu_req / criu_resp codecs', () => {
  it('encodes a dump request as protoc does: field by field, in number order', () => {
    const bytes = encodeRequest({
      type: CriuReqType.DUMP,
      opts: { images_dir_fd: 3, pid: 42, leave_running: true },
      keep_open: true,
    });
    // type=1 (08 01); opts (12 06: images_dir_fd 08 03, pid 10 2a, leave_running 18 01); keep_open (20 01)
    expect(bytes.toString('hex')).toBe('080112060803102a18012001');
    const back = decodeRequest(bytes);
    expect(back.type).toBe(CriuReqType.DUMP);
    expect(back.opts?.pid).toBe(42);
    expect(back.opts?.leave_running).toBe(true);
    expect(back.keep_open).toBe(true);
    expect(back.opts?.shell_job).toBeUndefined();
  });

  it('round-trips a response with a nested message and an error text', () => {
    const bytes = encodeResponse({
      type: CriuReqType.RESTORE,
      success: false,
      cr_errno: 17,
      cr_errmsg: 'pid 42 is taken',
      restore: { pid: 42 },
    });
    expect(decodeResponse(bytes)).toMatchObject({
      type: CriuReqType.RESTORE,
      success: false,
      cr_errno: 17,
      cr_errmsg: 'pid 42 is taken',
      restore: { pid: 42 },
    });
  });

  it('names the message when a datagram is truncated or lacks a required field', () => {
    const whole = encodeRequest({ type: CriuReqType.DUMP, opts: { images_dir_fd: 3 } });
    expect(() => decodeRequest(whole.subarray(0, whole.length - 1))).toThrow(RpcDecodeError);
    expect(() => decodeRequest(whole.subarray(0, whole.length - 1))).toThrow(/^criu_req: /);
    expect(() => decodeRequest(Buffer.alloc(0))).toThrow(/criu_req: missing required 'type'/);
    expect(() => decodeResponse(Buffer.from([0x08, 0x01]))).toThrow(/criu_resp: missing required 'success'/);
  });
});
