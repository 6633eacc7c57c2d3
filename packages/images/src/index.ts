/**
 * @criu-ts/images: CRIU's image files, byte for byte.
 *
 * - ImageDir: a dump directory; read and write images by name (`core-%u`, 42).
 * - ImageReader / ImageWriter: one image file, entry by entry, with buffered IO.
 * - PageMap / PageMapWriter: pagemap + pages, page lookup across incremental dumps.
 * - imageToCrit / critToImage: crit's JSON form, for crit-ts and tests.
 */
export { ImageError, ImageWriteError } from './errors.js';
export type { Extra, ExtraTypes, IpcMessage, TcpQueues } from './extras.js';
export * from './gen/types.js';
export { ImageDir, type ImageFileInfo } from './image-dir.js';
export { type ImageEntry, ImageReader, ImageWriter, readImage, writeImage } from './image-file.js';
export { createImageFile, fileKindOf, openImageForRead, pseudoFsOf } from './io/open.js';
export { type CritDecodeOptions, critToImage, imageToCrit } from './json/crit-image.js';
export { fromCrit, pyInt, toCrit } from './json/crit-json.js';
export { type PyJson, pyDumps, pyParse } from './json/pyjson.js';
export {
  type AnyImagePattern,
  type EntriesOf,
  type ExtraKind,
  type ExtraOf,
  type IdArgs,
  type IdOf,
  IMAGE_KINDS,
  IMAGE_NAMES,
  type ImageId,
  type ImageKind,
  type ImageName,
  type ImagePattern,
  type ImageTypes,
  imageFileName,
  type Layout,
  type MessageOf,
  type PatternsReadableAs,
  parseImageFileName,
  type RawImagePattern,
} from './kinds.js';
export {
  headMagicOf,
  IMG_COMMON_MAGIC,
  IMG_SERVICE_MAGIC,
  MAGICS,
  type MagicName,
  magicName,
} from './magic.js';
export {
  type ChainLevel,
  type FileRange,
  PARENT_LINK,
  PageChain,
  PageChainError,
  type PageSlice,
  type PageSources,
  pageSources,
  runSource,
  supersededData,
} from './pagemap/chain.js';
export {
  decodePagemapEntry,
  encodePagemapEntryInto,
  type PagemapEntry as PagemapRun,
  type PagemapHead as PagemapHeader,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  pageCount,
  pagemapEntry,
} from './pagemap/codec.js';
export {
  DIRECT_ALIGN,
  ImageRawWriter,
  PAGE_SIZE,
  PageMap,
  PageMapWriter,
  type PageRun,
  type RawWriterOptions,
} from './pagemap/page-map.js';
export {
  decodeMessage,
  encodeMessage,
  type MessageName,
  messageType,
  schemaRoot,
  warmUpCodecs,
} from './schema/index.js';
