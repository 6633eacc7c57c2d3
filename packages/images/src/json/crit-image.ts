import type protobuf from 'protobufjs/light.js';
import { ImageError } from '../errors.js';
import { type Extra, extraSize, type IpcMessage, type TcpQueues } from '../extras.js';
import { ImageReader, ImageWriter } from '../image-file.js';
import { type ExtraKind, IMAGE_KINDS } from '../kinds.js';
import { MAGICS, type MagicName } from '../magic.js';
import { encodeMessage, messageType, protobufjs } from '../schema/index.js';
import { decodeBytes, encodeBytes } from './base64.js';
import { fromCrit, pyTruthy, toCrit } from './crit-json.js';
import type { PyJson } from './pyjson.js';

export interface CritDecodeOptions {
  /** crit's --pretty: hex, flag names, devices, addresses. */
  pretty?: boolean;
  /** crit show --nopl: replace blobs by their size. */
  noPayload?: boolean;
}

type Dict = Record<string, PyJson>;

/** A whole image file as crit decodes it: `{ magic, entries }`. */
export function imageToCrit(path: string, opts: CritDecodeOptions = {}): Dict {
  const r = ImageReader.open(path);
  const entries: PyJson[] = [];
  try {
    for (const e of r.entries()) {
      const dict = toCrit(messageType(e.type), e.message, opts.pretty === true);
      if (e.extra !== undefined)
        addExtra(dict, r.kind.extra, e.type, e.message, e.extra, opts.noPayload === true);
      entries.push(dict);
    }
  } finally {
    r.close();
  }
  return { magic: r.magic, entries };
}

function addExtra(
  dict: Dict,
  kind: string | undefined,
  type: string,
  message: Record<string, unknown>,
  extra: Extra,
  noPayload: boolean,
): void {
  if (kind === undefined) {
    // Ghost file contents: crit leaves them out entirely with --nopl.
    if (!noPayload) dict.extra = encodeBytes(extra as Buffer);
    return;
  }
  if (noPayload) {
    const size =
      kind === 'ipc-msg' ? ipcMsgPayload(extra as IpcMessage[]) : extraSize(kind as never, message);
    dict.extra = `... <${humanSize(size)}>`;
    return;
  }
  switch (kind) {
    case 'tcp-stream':
      dict.extra = {
        inq: encodeBytes((extra as TcpQueues).inq),
        outq: encodeBytes((extra as TcpQueues).outq),
      };
      return;
    case 'ipc-sem':
      dict.extra = extra as number[];
      return;
    case 'ipc-msg':
      dict.extra = (extra as IpcMessage[]).flatMap((m) => [
        toCrit(messageType('ipc_msg'), m.msg as unknown as Record<string, unknown>, false),
        encodeBytes(m.data),
      ]);
      return;
    default:
      void type;
      dict.extra = encodeBytes(extra as Buffer);
  }
}

/** What crit's ipc_msg_queue_handler.skip() counts: each message's ipc_msg entry and its text. */
function ipcMsgPayload(msgs: IpcMessage[]): number {
  return msgs.reduce((acc, m) => acc + encodeMessage('ipc_msg', m.msg).length + m.msg.msize, 0);
}

/** crit's human_readable: 512B, 1.5KB, 3MB. */
function humanSize(n: number): string {
  let num = n;
  for (const unit of ['', 'K', 'M', 'G', 'T', 'P', 'E', 'Z']) {
    if (num < 1024) return Number.isInteger(num) ? `${num}${unit}B` : `${num.toFixed(1)}${unit}B`;
    num /= 1024;
  }
  return `${num.toFixed(1)}YB`;
}

/** Writes crit's JSON form of an image back as the binary image. */
export function critToImage(json: PyJson, path: string): void {
  const img = json as Dict;
  const magic = img.magic as MagicName;
  if (typeof magic !== 'string' || !(magic in MAGICS)) {
    throw new ImageError(path, 0, `unknown image magic ${JSON.stringify(img.magic)} in JSON`);
  }
  const kind = IMAGE_KINDS[magic];
  if (!kind) throw new ImageError(path, 0, `image ${magic} has no entry format`);
  const entries = img.entries;
  if (!Array.isArray(entries)) throw new ImageError(path, 0, 'JSON has no "entries" list');
  const w = new ImageWriter(path, magic);
  try {
    for (const [i, raw] of entries.entries()) {
      const { extra, ...fields } = raw as Dict;
      const type = i === 0 ? kind.message : nextType(kind.layout, kind.message);
      let message: Record<string, unknown>;
      try {
        message = toMessage(messageType(type), fields);
        const blob =
          kind.layout === 'ghost' ? ghostBlob(i, message, extra) : extraFromCrit(kind.extra, message, extra);
        w.write(message, blob);
      } catch (err) {
        throw new ImageError(path, 0, `entry ${i} (${type}): ${(err as Error).message}`);
      }
      // A ghost file without chunks is its first entry plus the contents: crit ignores the rest.
      if (kind.layout === 'ghost' && i === 0 && message.chunks !== true) break;
    }
  } finally {
    w.close();
  }
}

/** A crit dictionary as a message; like protobuf's SerializeToString, refuses missing required fields. */
function toMessage(t: protobuf.Type, fields: Dict): Record<string, unknown> {
  const message = fromCrit(t, fields);
  const missing = missingRequired(t, message, '');
  if (missing.length > 0)
    throw new Error(`Message ${t.name} is missing required fields: ${missing.join(',')}`);
  const problem = t.verify(t.fromObject(message));
  if (problem) throw new Error(problem);
  return message;
}

function missingRequired(t: protobuf.Type, msg: Record<string, unknown>, prefix: string): string[] {
  const out: string[] = [];
  for (const f of t.fieldsArray) {
    const v = msg[f.name];
    if (v === undefined) {
      if (f.required) out.push(prefix + f.name);
      continue;
    }
    const rt = f.resolve().resolvedType;
    if (!(rt instanceof protobufjs().Type)) continue;
    if (f.repeated) {
      (v as Record<string, unknown>[]).forEach((x, k) => {
        out.push(...missingRequired(rt, x, `${prefix}${f.name}[${k}].`));
      });
    } else {
      out.push(...missingRequired(rt, v as Record<string, unknown>, `${prefix}${f.name}.`));
    }
  }
  return out;
}

function nextType(layout: string, first: string): string {
  if (layout === 'pagemap') return 'pagemap_entry';
  if (layout === 'ghost') return 'ghost_chunk_entry';
  return first;
}

const describe = (v: PyJson | undefined) =>
  v === undefined ? 'nothing' : typeof v === 'bigint' ? String(v) : JSON.stringify(v);

function b64(v: PyJson | undefined, what: string): Buffer {
  if (typeof v !== 'string') throw new Error(`${what} must be a base64 string, not ${describe(v)}`);
  return decodeBytes(v);
}

/** Ghost file contents: after the first entry, or after each chunk entry when chunked. */
function ghostBlob(
  index: number,
  message: Record<string, unknown>,
  extra: PyJson | undefined,
): Extra | undefined {
  if (index === 0 && message.chunks === true) return undefined;
  return b64(extra, 'extra');
}

/** The blob after an entry, as crit's extra handlers take it from JSON. */
function extraFromCrit(
  kind: ExtraKind | undefined,
  message: Record<string, unknown>,
  extra: PyJson | undefined,
): Extra | undefined {
  if (kind === undefined) return undefined;
  // crit's entry_handler.dump() writes a blob only `if extra`: null, "", [], {}, 0 mean none.
  if (!pyTruthy(extra ?? null)) {
    if (kind === 'tcp-stream') return { inq: Buffer.alloc(0), outq: Buffer.alloc(0) };
    return kind === 'ipc-sem' || kind === 'ipc-msg' ? [] : Buffer.alloc(0);
  }
  switch (kind) {
    case 'tcp-stream': {
      if (typeof extra !== 'object' || extra === null || Array.isArray(extra)) {
        throw new Error(`extra must be {"inq": ..., "outq": ...}, not ${describe(extra)}`);
      }
      const q = extra as Dict;
      return { inq: b64(q.inq, 'extra.inq'), outq: b64(q.outq, 'extra.outq') };
    }
    case 'ipc-sem': {
      if (!Array.isArray(extra))
        throw new Error(`extra must be a list of semaphore values, not ${describe(extra)}`);
      const values = extra.map((v) => {
        const n = typeof v === 'boolean' ? Number(v) : v;
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 0xffff) {
          throw new Error(`semaphore value ${describe(v)} is not an unsigned short`);
        }
        return n;
      });
      if (values.length !== Number(message.nsems)) throw new Error('Number of semaphores mismatch');
      return values;
    }
    case 'ipc-msg': {
      if (!Array.isArray(extra) || extra.length % 2 !== 0) {
        throw new Error('extra must be a list of ipc_msg entries, each followed by its text in base64');
      }
      const out: IpcMessage[] = [];
      for (let i = 0; i < extra.length; i += 2) {
        const msg = toMessage(messageType('ipc_msg'), extra[i] as Dict) as unknown as IpcMessage['msg'];
        out.push({ msg, data: b64(extra[i + 1], `extra[${i + 1}]`) });
      }
      return out;
    }
    default:
      return b64(extra, 'extra');
  }
}
