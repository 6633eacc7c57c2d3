// criu_req and criu_resp on the wire: one protobuf message per SOCK_SEQPACKET datagram, no
// length prefix, as CRIU's swrk and service exchange them. The codecs are generated from
// proto/rpc/rpc.proto (src/gen); the wire primitives are @criu-ts/images'.
import { WireReader, WireWriter } from '@criu-ts/images/wire';
import { codecs } from './gen/codecs.js';
import type { CriuReq, CriuResp } from './gen/types.js';

/** A datagram that is not a well-formed message of the expected type. */
export class RpcDecodeError extends Error {
  override name = 'RpcDecodeError';
}

function codec(name: 'criu_req' | 'criu_resp') {
  const c = codecs[name];
  if (!c) throw new Error(`rpc codecs: no ${name}`); // the generated table always has both
  return c;
}

function decode<T>(name: 'criu_req' | 'criu_resp', bytes: Uint8Array): T {
  try {
    return codec(name).decode(new WireReader(bytes), 0) as T;
  } catch (e) {
    throw new RpcDecodeError(`${name}: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function encode(name: 'criu_req' | 'criu_resp', value: CriuReq | CriuResp): Buffer {
  const w = new WireWriter(256);
  codec(name).encode(w, value, 0);
  return w.finish();
}

/** A request as CRIU reads it (64-bit fields as bigint, absent optional fields left out). */
export const decodeRequest = (bytes: Uint8Array): CriuReq => decode<CriuReq>('criu_req', bytes);
export const encodeRequest = (req: CriuReq): Buffer => encode('criu_req', req);
export const decodeResponse = (bytes: Uint8Array): CriuResp => decode<CriuResp>('criu_resp', bytes);
export const encodeResponse = (resp: CriuResp): Buffer => encode('criu_resp', resp);
