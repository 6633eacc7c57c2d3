import protobuf from 'protobufjs/light.js';
import { descriptorJson } from '../gen/descriptor.js';
import type { MessageTypes } from '../gen/types.js';

export type MessageName = keyof MessageTypes;

let root: protobuf.Root | undefined;
const types = new Map<string, protobuf.Type>();

/** The protobufjs root of every CRIU image schema (built once, on first use). */
export function schemaRoot(): protobuf.Root {
  root ??= protobuf.Root.fromJSON(JSON.parse(descriptorJson) as protobuf.INamespace);
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

/**
 * How decoded messages look in TypeScript: 64-bit integers are bigint (never a lossy number),
 * enums are numbers, bytes are Buffers, repeated fields are always arrays, and an optional
 * field that was not on the wire is absent (proto2 presence, as crit shows it).
 */
const TO_OBJECT: protobuf.IConversionOptions = {
  longs: BigInt as unknown as typeof String,
  enums: Number,
  bytes: Buffer as unknown as typeof String,
  defaults: false,
  arrays: true,
};

export function decodeMessage<K extends MessageName>(name: K, bytes: Uint8Array): MessageTypes[K] {
  const type = messageType(name);
  return type.toObject(type.decode(bytes), TO_OBJECT) as MessageTypes[K];
}

export function encodeMessage<K extends MessageName>(name: K, value: MessageTypes[K]): Uint8Array {
  const type = messageType(name);
  return type.encode(type.fromObject(value as Record<string, unknown>)).finish();
}

/**
 * Builds message codecs now (protobufjs generates them on first use): a dumper calls this
 * before it stops any task, so code generation never counts as frozen time. With names,
 * only those messages and the ones they contain; without, every message.
 */
const warmed = new Set<protobuf.Type>();
export function warmUpCodecs(names?: string[]): void {
  const setup = (t: protobuf.Type): void => {
    if (warmed.has(t)) return;
    warmed.add(t);
    t.setup();
    for (const f of t.fieldsArray) if (f.resolvedType instanceof protobuf.Type) setup(f.resolvedType);
  };
  if (names) {
    for (const n of names) setup(messageType(n));
    return;
  }
  const visit = (ns: protobuf.NamespaceBase): void => {
    for (const nested of ns.nestedArray) {
      if (nested instanceof protobuf.Type) setup(nested);
      if (nested instanceof protobuf.Namespace) visit(nested);
    }
  };
  visit(schemaRoot());
}
