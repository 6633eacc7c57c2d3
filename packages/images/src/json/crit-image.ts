import { ImageError } from '../errors.js';
import { type Extra, extraSize, type IpcMessage, type TcpQueues } from '../extras.js';
import { ImageReader, ImageWriter } from '../image-file.js';
import { IMAGE_KINDS } from '../kinds.js';
import { MAGICS, type MagicName } from '../magic.js';
import { messageType } from '../schema/index.js';
import { decodeBytes, encodeBytes } from './base64.js';
import { fromCrit, toCrit } from './crit-json.js';
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

function ipcMsgPayload(msgs: IpcMessage[]): number {
  return msgs.reduce((acc, m) => acc + m.msg.msize, 0);
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
    entries.forEach((raw, i) => {
      const { extra, ...fields } = raw as Dict;
      const type = i === 0 ? kind.message : nextType(kind.layout, kind.message);
      const t = messageType(type);
      let message: Record<string, unknown>;
      try {
        message = fromCrit(t, fields);
        const problem = t.verify(t.fromObject(message));
        if (problem) throw new Error(problem);
      } catch (err) {
        throw new ImageError(path, 0, `entry ${i} (${type}): ${(err as Error).message}`);
      }
      w.write(message, extraFromCrit(kind.extra, kind.layout, extra));
    });
  } finally {
    w.close();
  }
}

function nextType(layout: string, first: string): string {
  if (layout === 'pagemap') return 'pagemap_entry';
  if (layout === 'ghost') return 'ghost_chunk_entry';
  return first;
}

function extraFromCrit(
  kind: string | undefined,
  layout: string,
  extra: PyJson | undefined,
): Extra | undefined {
  if (extra === undefined || extra === null) {
    return kind === undefined ? undefined : Buffer.alloc(0);
  }
  if (kind === undefined) return layout === 'ghost' ? decodeBytes(String(extra)) : undefined;
  switch (kind) {
    case 'tcp-stream': {
      const q = extra as Dict;
      return { inq: decodeBytes(String(q.inq)), outq: decodeBytes(String(q.outq)) };
    }
    case 'ipc-sem':
      return (extra as PyJson[]).map(Number);
    case 'ipc-msg': {
      const list = extra as PyJson[];
      const out: IpcMessage[] = [];
      for (let i = 0; i + 1 < list.length; i += 2) {
        const msg = fromCrit(messageType('ipc_msg'), list[i] as Dict) as unknown as IpcMessage['msg'];
        out.push({ msg, data: decodeBytes(String(list[i + 1])) });
      }
      return out;
    }
    default:
      return decodeBytes(String(extra));
  }
}
