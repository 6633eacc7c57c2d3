import { createRequire } from 'node:module';
import type protobuf from 'protobufjs/light.js';
import { codecs } from '../gen/codecs.js';
import { descriptorJson } from '../gen/descriptor.js';
import type { MessageTypes } from '../gen/types.js';
import { isObject, objectExpected, WireReader, WireWriter } from './wire.js';

export type MessageName = keyof MessageTypes;

// protobufjs is only loaded for the schema itself (crit's JSON form needs the field options):
// decoding and encoding use the codecs generated at build time (src/gen/codecs.ts).
const require = createRequire(import.meta.url);
let pb: typeof protobuf | undefined;

/** The protobufjs module, loaded on first use. */
export function protobufjs(): typeof protobuf {
  pb ??= require('protobufjs/light.js') as typeof protobuf;
  return pb;
}

let root: protobuf.Root | undefined;
const types = new Map<string, protobuf.Type>();

/** The protobufjs root of every CRIU image schema (built once, on first use). */
export function schemaRoot(): protobuf.Root {
  root ??= protobufjs().Root.fromJSON(JSON.parse(descriptorJson) as protobuf.INamespace);
  return root;
}

export function messageType(name: string): protobuf.Type {
  let t = types.get(name);
  if (!t) {
    t = schemaRoot().lookupType(name);
    types.set(name, t);
  }
  return t;
}

function codecOf(name: string) {
  const c = codecs[name];
  if (!c) throw new Error(`no such type: ${name}`);
  return c;
}

/**
 * How decoded messages look in TypeScript: 64-bit integers are bigint (never a lossy number),
 * enums are numbers, bytes are Buffers (views of the input), repeated fields are always arrays,
 * and an optional field that was not on the wire is absent (proto2 presence, as crit shows it).
 */
export function decodeMessage<K extends MessageName>(name: K, bytes: Uint8Array): MessageTypes[K] {
  const codec = codecOf(name);
  if (!(bytes instanceof Uint8Array)) throw new Error('illegal buffer');
  return codec.decode(new WireReader(bytes), 0) as MessageTypes[K];
}

/** One writer for every encode: messages are written whole, never one inside another's call. */
const writer = new WireWriter(4096);

/**
 * Encodes a message. Values are taken as protobufjs's fromObject took them: 64-bit fields as
 * bigint or number, bytes as Buffer/Uint8Array (or base64 text), enums as numbers or names.
 */
export function encodeMessage<K extends MessageName>(name: K, value: MessageTypes[K]): Uint8Array {
  const codec = codecOf(name);
  if (!isObject(value)) throw objectExpected(`.${name}`);
  writer.pos = 0;
  codec.encode(writer, value, 0);
  return writer.finish();
}

/**
 * Kept for callers that prepared codecs before stopping a task: they are generated at build
 * time now, so there is nothing left to prepare.
 */
export function warmUpCodecs(_names?: string[]): void {}
