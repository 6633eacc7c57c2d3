// criu-ts with the RPC commands: the entry of the bundle that bin/load-bundle.cjs runs for `swrk` and
// `service` (every other command runs criu-ts.ts's bundle, which does not carry the service's code).
import { serviceCommand, swrkCommand } from '@criu-ts/service';
import { main as criuTs } from './criu-ts.js';

export function main(argv: string[]): Promise<number> {
  return criuTs(argv, { swrk: swrkCommand, service: serviceCommand });
}
