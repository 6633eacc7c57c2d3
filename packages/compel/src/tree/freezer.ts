// Freezing a cgroup before seizing its tasks, so that no thread or child appears or exits while the
// tree is walked. cgroup v2: write 1 to cgroup.freeze and wait for "frozen 1" in cgroup.events.
// cgroup v1 (the freezer hierarchy): write FROZEN to freezer.state and wait until it reads FROZEN.
//
// Frozen tasks can be seized and interrupted; on this kernel (6.18, v2) the interrupt stop is even
// reported while frozen, but a PTRACE_CONT'ed frozen task goes straight back into the freezer: the
// cgroup must be thawed before any code is injected. seizeTree() therefore freezes, seizes and
// interrupts every thread, thaws, and only then relies on the stops.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { ProcDir } from '@criu-ts/bfd';
import { CompelError } from '../errors.js';
import { DeathGuard } from '../spawn/death-guard.js';
import { Backoff } from '../util/wait.js';

/** Mount point of the cgroup v2 hierarchy (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid hosts). */
export function cgroup2Mount(): string {
  const m = ProcDir.self()
    .mountinfo()
    .find((x) => x.fstype === 'cgroup2');
  if (m === undefined) throw new CompelError('no cgroup2 file system is mounted');
  return m.mountpoint;
}

export class CgroupFreezer {
  /** Absolute directory of the cgroup. */
  readonly path: string;
  readonly version: 1 | 2;
  /** The cgroup was already frozen when freeze() was called. */
  private wasFrozen = false;
  private guard: DeathGuard | undefined;

  /** `cgroup`: an absolute directory, or a path relative to the cgroup v2 mount. */
  constructor(cgroup: string) {
    this.path = isAbsolute(cgroup) ? cgroup : join(cgroup2Mount(), cgroup);
    if (existsSync(join(this.path, 'cgroup.freeze'))) this.version = 2;
    else if (existsSync(join(this.path, 'freezer.state'))) this.version = 1;
    else
      throw new CompelError(`${this.path}: not a cgroup with a freezer (no cgroup.freeze, no freezer.state)`);
  }

  /** True when every task of the cgroup is frozen. */
  isFrozen(): boolean {
    if (this.version === 2) return /^frozen 1$/m.test(readFileSync(join(this.path, 'cgroup.events'), 'utf8'));
    return readFileSync(join(this.path, 'freezer.state'), 'utf8').trim() === 'FROZEN';
  }

  /**
   * Freeze the cgroup and wait (bounded) until the kernel reports it frozen. Until thaw(), a guard thaws
   * it if criu-ts dies (a tree left frozen would never run again).
   */
  freeze(timeoutMs = 10_000): void {
    this.wasFrozen = this.isFrozen();
    if (!this.wasFrozen) {
      this.guard = new DeathGuard(`freezing ${this.path}`);
      this.guard.undoByWriting(...this.thawWrite());
    }
    if (this.version === 2) writeFileSync(join(this.path, 'cgroup.freeze'), '1');
    else writeFileSync(join(this.path, 'freezer.state'), 'FROZEN');
    const backoff = new Backoff(timeoutMs, 5);
    while (!this.isFrozen()) {
      if (!backoff.wait()) {
        this.thaw();
        throw new CompelError(`${this.path}: not frozen after ${timeoutMs} ms`);
      }
    }
  }

  /**
   * Thaw the cgroup. Seized tasks stay in their ptrace stops. It is thawed even if it was frozen before
   * freeze(): injected code cannot run in a frozen task (`frozenBefore` tells whether it was).
   */
  thaw(): void {
    writeFileSync(...this.thawWrite());
    this.guard?.disarm();
    this.guard = undefined;
  }

  /** The file and the text that thaw the cgroup. */
  private thawWrite(): [string, string] {
    return this.version === 2
      ? [join(this.path, 'cgroup.freeze'), '0']
      : [join(this.path, 'freezer.state'), 'THAWED'];
  }

  /** Whether the cgroup was frozen already when freeze() was called. */
  get frozenBefore(): boolean {
    return this.wasFrozen;
  }
}
