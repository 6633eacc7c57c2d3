// A batch of injected syscalls, each with a name, so that a failing one is reported by what it was for.
import type { Call, Injector } from './inject.js';

export class Calls {
  readonly list: Call[] = [];
  readonly names: string[] = [];
  add(name: string, c: Call): void {
    this.list.push(c);
    this.names.push(name);
  }
  run(inj: Injector): bigint[] {
    return inj.batch(this.list, (i) => this.names[i] ?? `call ${i}`);
  }
}
