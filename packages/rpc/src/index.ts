// @criu-ts/rpc: CRIU's RPC protocol (criu_req / criu_resp over AF_UNIX SOCK_SEQPACKET).
export * from './gen/types.js';
export {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  RpcDecodeError,
} from './messages.js';
