/**
 * @criu-ts/page-server: CRIU's page-server wire protocol for Node. The server receives a dump's memory
 * over TCP and writes it as pagemap/pages images; the client is the dump side that sends it.
 */
export { type ConnectOptions, PageServerClient, PageStream } from './client.js';
export {
  decodeDstId,
  decodeHeader,
  detectLayout,
  encodeDstId,
  encodeHeader,
  HEADER_SIZE,
  type Header,
  type HeaderLayout,
  maxPagesPerHeader,
  opName,
  PAGE_SIZE,
  type PagemapKind,
  PageServerError,
  PE_LAZY,
  PE_PARENT,
  PE_PRESENT,
  PS_IOV_ADD,
  PS_IOV_ADD_F,
  PS_IOV_CLOSE,
  PS_IOV_FORCE_CLOSE,
  PS_IOV_GET,
  PS_IOV_HOLE,
  PS_IOV_OPEN,
  PS_IOV_OPEN2,
  PS_IOV_PARENT,
  PS_TYPE_PID,
  PS_TYPE_SHMEM,
} from './protocol.js';
export {
  type ListenOptions,
  type LogLevel,
  PageServerListener,
  PageServerSession,
  type ReceivedPagemap,
  type ReceiveOptions,
  type ReceiveResult,
  receivePages,
  servePages,
} from './server.js';
