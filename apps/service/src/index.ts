// @criu-ts/service: CRIU's RPC service, `criu-ts swrk <fd>` and `criu-ts service`, over @criu-ts/core.
export { DEFAULT_ADDRESS, serviceCommand, WORKER_JOBS } from './service.js';
export { CRIU_COMPAT, type SessionOptions, type SessionResult, serveConnection } from './session.js';
export { swrkCommand } from './swrk.js';
