import type { ExtraTypes } from './extras.js';
import {
  IMAGE_KIND_TABLE,
  IMAGE_NAME_TABLE,
  type ImageTypes,
  type RawImagePattern,
} from './gen/image-kinds.js';
import type { MagicName } from './magic.js';

/**
 * How an image's entries are laid out after its magic:
 * - 'entries': every entry is one message of `message` type, maybe followed by an extra blob;
 * - 'pagemap': a pagemap_head entry, then pagemap_entry entries;
 * - 'ghost': a ghost_file_entry, then either raw contents or ghost_chunk_entry + data pairs.
 */
export type Layout = 'entries' | 'pagemap' | 'ghost';

/** The blob that follows an entry on disk, sized by fields of that entry. */
export type ExtraKind = keyof ExtraTypes;

export interface ImageKind {
  readonly magic: MagicName;
  readonly layout: Layout;
  /** Message type of the entries (for 'pagemap' and 'ghost': of the first entry). */
  readonly message: string;
  readonly extra?: ExtraKind;
}

/** Every image kind CRIU 4.2 writes with protobuf entries, keyed by magic name. */
export const IMAGE_KINDS: Partial<Record<MagicName, ImageKind>> = Object.fromEntries(
  (IMAGE_KIND_TABLE satisfies readonly ImageKind[]).map((k) => [k.magic, k]),
);

/**
 * Image file names, as CRIU forms them (criu/image-desc.c). `%u`/`%d`/`%lu` take a decimal
 * id, `%x` a hex one. Raw images (pages, tarballs, ip dumps) have no magic.
 */
export interface ImageName {
  readonly pattern: string;
  readonly magic: MagicName | 'RAW';
}

const NAMES: readonly ImageName[] = IMAGE_NAME_TABLE;

export const IMAGE_NAMES: readonly ImageName[] = NAMES;

export type { ImageTypes, RawImagePattern };

/** The file name pattern of an image with entries: 'core-%u', 'pagemap-%lu', 'files', 'tcp-stream-%x'... */
export type ImagePattern = keyof ImageTypes;
/** The file name pattern of any image, raw ones (pages, tarballs, ip dumps) included. */
export type AnyImagePattern = ImagePattern | RawImagePattern;
/** What goes in a pattern's `%u`/`%lu`/`%x`/`%s`. */
export type ImageId = number | bigint | string;
/** The id an image of pattern K takes: one when its name has a `%` conversion, none otherwise. */
export type IdOf<K extends string> = K extends `${string}%${string}` ? ImageId : undefined;
/** The id arguments of a reader of pattern K: (id) when its name has a `%` conversion, () otherwise. */
export type IdArgs<K extends string> = K extends `${string}%${string}` ? [id: ImageId] : [id?: undefined];
/** The message of any entry of an image of pattern K (CoreEntry for 'core-%u'). */
export type MessageOf<K extends ImagePattern> = ImageTypes[K]['message'];
/** All the entries of an image of pattern K, in order (a pagemap's head first). */
export type EntriesOf<K extends ImagePattern> = ImageTypes[K]['entries'];
/** The blob after each entry of an image of pattern K (never: it has none). */
export type ExtraOf<K extends ImagePattern> = ImageTypes[K]['extra'];
/**
 * The patterns whose messages can be read as T, for the readers that take an explicit view type
 * (`dir.messages<{ bytes: number }>('pipes-data')`): T must be a supertype of the kind's message.
 */
export type PatternsReadableAs<T> = { [K in ImagePattern]: MessageOf<K> extends T ? K : never }[ImagePattern];

/** The file name of an image: `imageFileName('core-%u', 42)` is `core-42.img`. */
export function imageFileName(pattern: string, id?: number | bigint | string): string {
  const base = pattern.replace(/%(u|d|lu|ld|x|s)/, (_m, conv: string) => {
    if (id === undefined) throw new Error(`image name ${pattern} needs an id`);
    return conv === 'x' ? BigInt(id).toString(16) : String(id);
  });
  return hasImgSuffix(pattern) ? `${base}.img` : base;
}

/**
 * Tarballs carry their own extension, and CRIU names its service images (stats-dump, stats-restore,
 * irmap-cache) without one; everything else ends in .img.
 */
function hasImgSuffix(pattern: string): boolean {
  return !pattern.endsWith('.tar.gz') && pattern !== 'stats-%s' && pattern !== 'irmap-cache';
}

const MATCHERS = NAMES.map((n) => {
  const rx = n.pattern
    .replace(/[.]/g, '\\.')
    .replace(/%(u|d|lu)/, '(\\d+)')
    .replace(/%ld/, '(-?\\d+)')
    .replace(/%x/, '([0-9a-f]+)')
    .replace(/%s/, '([a-z]+)');
  const suffix = hasImgSuffix(n.pattern) ? '\\.img' : '';
  // The literal start of the name: a cheap test before the regex (a directory of 1,000 connections
  // has 1,000 tcp-stream files, each tried against every kind).
  const prefix = n.pattern.split('%')[0] as string;
  return { name: n, prefix, rx: new RegExp(`^${rx}${suffix}$`) };
});

/** Which image a file name is, and its id: `core-42.img` -> core-%u, '42'. */
export function parseImageFileName(file: string): { name: ImageName; id?: string } | undefined {
  for (const m of MATCHERS) {
    if (!file.startsWith(m.prefix)) continue;
    const hit = m.rx.exec(file);
    if (hit) return hit[1] === undefined ? { name: m.name } : { name: m.name, id: hit[1] };
  }
  return undefined;
}
