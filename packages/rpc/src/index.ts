// @criu-ts/rpc: CRIU's RPC protocol (criu_req / criu_resp over AF_UNIX SOCK_SEQPACKET) and a typed
// client that drives criu-ts (or CRIU) through `swrk` or a service socket.

export {
  ChannelClosedError,
  type ChannelOptions,
  DatagramTruncatedError,
  MAX_DATAGRAM,
  SeqpacketChannel,
} from './channel.js';
export {
  CriuClient,
  type CriuClientOptions,
  type CriuOptsFields,
  type DumpOptions,
  decodeWaitStatus,
  type NotifyCallback,
  type NotifyFunction,
  type NotifyHandlers,
  type NotifyStage,
  type RequestOptions,
  type RestoreOptions,
  type WaitStatus,
} from './client.js';
export {
  CriuConnection,
  type Exchange,
  type NotifyAnswer,
  type StderrMode,
  type SwrkOptions,
} from './connection.js';
export {
  CriuConnectionError,
  CriuError,
  CriuRpcError,
  type ExitStatus,
  requestTypeName,
} from './errors.js';
export * from './gen/types.js';
export {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  RpcDecodeError,
} from './messages.js';
