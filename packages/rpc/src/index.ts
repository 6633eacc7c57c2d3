// @criu-ts/rpc: CRIU's RPC protocol (criu_req / criu_resp over AF_UNIX SOCK_SEQPACKET) and a typed
// client that drives criu-ts (or CRIU) through `swrk` or a service socket.
export * from './gen/types.js';
export {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  RpcDecodeError,
} from './messages.js';
export {
  type ChannelOptions,
  ChannelClosedError,
  DatagramTruncatedError,
  MAX_DATAGRAM,
  SeqpacketChannel,
} from './channel.js';
export {
  CriuConnectionError,
  CriuError,
  CriuRpcError,
  type ExitStatus,
  requestTypeName,
} from './errors.js';
export {
  CriuConnection,
  type Exchange,
  type NotifyAnswer,
  type StderrMode,
  type SwrkOptions,
} from './connection.js';
export {
  CriuClient,
  type CriuClientOptions,
  type CriuOptsFields,
  decodeWaitStatus,
  type DumpOptions,
  type NotifyCallback,
  type NotifyFunction,
  type NotifyHandlers,
  type NotifyStage,
  type RequestOptions,
  type RestoreOptions,
  type WaitStatus,
} from './client.js';
