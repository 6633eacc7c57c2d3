import { ImageError } from './errors.js';
import type { FileReader } from './io/file-reader.js';
import type { FileWriter } from './io/file-writer.js';
import type { ExtraKind } from './kinds.js';
import { decodeMessage, encodeMessage } from './schema/index.js';

/** The blob after an entry: raw bytes, two TCP queues, semaphore values or SysV messages. */
export type Extra = Buffer | TcpQueues | number[] | IpcMessage[];

/** The blob after an entry, by kind (the extra types of ImageTypes, gen/image-kinds.ts). */
export interface ExtraTypes {
  'pipe-data': Buffer;
  'sk-queue': Buffer;
  'tcp-stream': TcpQueues;
  'bpfmap-data': Buffer;
  'ipc-shm': Buffer;
  'ipc-sem': number[];
  'ipc-msg': IpcMessage[];
}

export interface TcpQueues {
  inq: Buffer;
  outq: Buffer;
}

export interface IpcMessage {
  /** The ipc_msg entry: mtype and msize. */
  msg: { mtype: bigint; msize: number };
  data: Buffer;
}

type Fields = Record<string, unknown>;

const roundUp = (n: number, to: number) => Math.ceil(n / to) * to;

function count(entry: Fields, field: string): number {
  const v = entry[field];
  const n = typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : 0;
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`field ${field} = ${String(v)} is not a valid size`);
  return n;
}

/** How many bytes of blob follow an entry (for crit's --nopl summary). */
export function extraSize(kind: ExtraKind, entry: Fields): number {
  switch (kind) {
    case 'pipe-data':
      return count(entry, 'bytes');
    case 'sk-queue':
      return count(entry, 'length');
    case 'tcp-stream':
      return count(entry, 'inq_len') + count(entry, 'outq_len');
    case 'bpfmap-data':
      return count(entry, 'keys_bytes') + count(entry, 'values_bytes');
    case 'ipc-shm':
      return count(entry, 'size');
    case 'ipc-sem':
      return 2 * count(entry, 'nsems');
    case 'ipc-msg':
      return 0; // only known after reading the messages
  }
}

export function readExtra(kind: ExtraKind, entry: Fields, r: FileReader): Extra {
  switch (kind) {
    case 'pipe-data':
    case 'sk-queue':
    case 'bpfmap-data':
      return r.takeCopy(extraSize(kind, entry), `${kind} blob`);
    case 'tcp-stream':
      return {
        inq: r.takeCopy(count(entry, 'inq_len'), 'tcp input queue'),
        outq: r.takeCopy(count(entry, 'outq_len'), 'tcp output queue'),
      };
    case 'ipc-shm': {
      const size = count(entry, 'size');
      const data = r.takeCopy(size, 'shared memory contents');
      r.skip(roundUp(size, 4) - size, 'shared memory padding');
      return data;
    }
    case 'ipc-sem': {
      const n = count(entry, 'nsems');
      const raw = r.take(2 * n, 'semaphore values');
      const values = Array.from({ length: n }, (_, i) => raw.readUInt16LE(2 * i));
      r.skip(roundUp(2 * n, 8) - 2 * n, 'semaphore padding');
      return values;
    }
    case 'ipc-msg': {
      const out: IpcMessage[] = [];
      for (let i = count(entry, 'qnum'); i > 0 && !r.atEnd(); i--) {
        const at = r.offset;
        const len = r.u32('ipc message length');
        let msg: IpcMessage['msg'];
        try {
          msg = decodeMessage('ipc_msg', r.take(len, 'ipc message')) as IpcMessage['msg'];
        } catch (err) {
          if (err instanceof ImageError) throw err;
          throw new ImageError(
            r.path,
            at,
            `bad ipc_msg: ${err instanceof Error ? err.message : String(err)}`,
          );
        }
        const data = r.takeCopy(msg.msize, 'ipc message text');
        r.skip(roundUp(msg.msize, 8) - msg.msize, 'ipc message padding');
        out.push({ msg, data });
      }
      return out;
    }
  }
}

export function writeExtra(kind: ExtraKind, entry: Fields, extra: Extra, w: FileWriter): void {
  switch (kind) {
    case 'pipe-data':
    case 'sk-queue':
    case 'bpfmap-data':
      w.write(extra as Buffer);
      return;
    case 'tcp-stream':
      w.write((extra as TcpQueues).inq);
      w.write((extra as TcpQueues).outq);
      return;
    case 'ipc-shm': {
      const size = count(entry, 'size');
      w.write((extra as Buffer).subarray(0, size));
      w.write(Buffer.alloc(roundUp(size, 4) - size));
      return;
    }
    case 'ipc-sem': {
      const values = extra as number[];
      const raw = Buffer.alloc(roundUp(2 * values.length, 8));
      for (const [i, v] of values.entries()) raw.writeUInt16LE(v, 2 * i);
      w.write(raw);
      return;
    }
    case 'ipc-msg':
      for (const { msg, data } of extra as IpcMessage[]) {
        const bytes = encodeMessage('ipc_msg', msg as never);
        w.u32(bytes.length);
        w.write(bytes);
        w.write(data.subarray(0, msg.msize));
        w.write(Buffer.alloc(roundUp(msg.msize, 8) - msg.msize));
      }
      return;
  }
}
