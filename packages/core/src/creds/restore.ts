import { ProcDir, procPath, readSysctlInt } from '@criu-ts/bfd';
import type { CredsEntry } from '@criu-ts/images';
import {
  LINUX_CAPABILITY_VERSION_3,
  O_WRONLY,
  PR_CAP_AMBIENT,
  PR_CAP_AMBIENT_CLEAR_ALL,
  PR_CAP_AMBIENT_RAISE,
  PR_CAPBSET_DROP,
  PR_SET_NO_NEW_PRIVS,
  PR_SET_SECUREBITS,
  SECBIT_NO_SETUID_FIXUP,
  SYS,
} from '@criu-ts/sys';
import type { Calls } from '../restore/calls.js';
import { RestoreError } from '../restore/errors.js';
import type { Injector } from '../restore/inject.js';

const INVALID_UID = 0xffff_ffff;

let lastCap: number | undefined;
function capLastCap(): number {
  lastCap ??= readSysctlInt('kernel/cap_last_cap');
  return lastCap;
}

const capBits = (words: number[] | undefined): bigint =>
  BigInt(words?.[0] ?? 0) | (BigInt(words?.[1] ?? 0) << 32n);

/** Credentials of one thread, in the order that keeps the capabilities needed for the next step. */
export function credsCalls(inj: Injector, cr: CredsEntry, c: Calls): void {
  // Capabilities survive uid changes with SECURE_NO_SETUID_FIXUP; the real securebits come after.
  c.add('prctl(PR_SET_SECUREBITS, NO_SETUID_FIXUP)', [
    SYS.prctl,
    PR_SET_SECUREBITS,
    SECBIT_NO_SETUID_FIXUP,
    0,
    0,
    0,
  ]);
  const groups = cr.groups ?? [];
  const g = Buffer.alloc(Math.max(4, groups.length * 4));
  groups.forEach((x, i) => {
    g.writeUInt32LE(x >>> 0, i * 4);
  });
  c.add('setgroups', [SYS.setgroups, groups.length, inj.put(g)]);
  c.add('setresuid', [SYS.setresuid, cr.uid >>> 0, cr.euid >>> 0, cr.suid >>> 0]);
  c.add('setfsuid', [SYS.setfsuid, cr.fsuid >>> 0]);
  c.add('setresgid', [SYS.setresgid, cr.gid >>> 0, cr.egid >>> 0, cr.sgid >>> 0]);
  c.add('setfsgid', [SYS.setfsgid, cr.fsgid >>> 0]);
  c.add('prctl(PR_SET_SECUREBITS)', [SYS.prctl, PR_SET_SECUREBITS, cr.secbits >>> 0, 0, 0, 0]);
  const bnd = capBits(cr.cap_bnd);
  if (cr.cap_bnd?.length) {
    for (let cap = 0; cap <= capLastCap(); cap++) {
      if (!(bnd & (1n << BigInt(cap))))
        c.add(`prctl(PR_CAPBSET_DROP, ${cap})`, [SYS.prctl, PR_CAPBSET_DROP, cap, 0, 0, 0]);
    }
  }
  const hdr = Buffer.alloc(8);
  hdr.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  const data = Buffer.alloc(24);
  for (let w = 0; w < 2; w++) {
    data.writeUInt32LE((cr.cap_eff?.[w] ?? 0) >>> 0, w * 12);
    data.writeUInt32LE((cr.cap_prm?.[w] ?? 0) >>> 0, w * 12 + 4);
    data.writeUInt32LE((cr.cap_inh?.[w] ?? 0) >>> 0, w * 12 + 8);
  }
  c.add('capset', [SYS.capset, inj.put(hdr), inj.put(data)]);
  c.add('prctl(PR_CAP_AMBIENT_CLEAR_ALL)', [SYS.prctl, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0]);
  const amb = capBits(cr.cap_amb);
  for (let cap = 0; cap <= capLastCap(); cap++) {
    if (amb & (1n << BigInt(cap)))
      c.add(`prctl(PR_CAP_AMBIENT_RAISE, ${cap})`, [
        SYS.prctl,
        PR_CAP_AMBIENT,
        PR_CAP_AMBIENT_RAISE,
        cap,
        0,
        0,
      ]);
  }
  if (cr.no_new_privs) c.add('prctl(PR_SET_NO_NEW_PRIVS)', [SYS.prctl, PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0]);
}

/**
 * The audit loginuid (tc.loginuid, the task's, for each of its threads): only a thread itself may
 * write its /proc/thread-self/loginuid (with CAP_AUDIT_CONTROL, before the creds are restored).
 * Unset in the image (-1), or already the value (inherited from criu-ts): nothing to do.
 */
export function restoreLoginuid(inj: Injector, pid: number, tid: number, loginuid: number): void {
  const want = loginuid >>> 0;
  if (want === INVALID_UID) return;
  const now = ProcDir.open(pid);
  let cur: number;
  try {
    cur = Number(now.task(tid).readText('loginuid').trim());
  } finally {
    now.close();
  }
  if (cur === want) return;
  const path = inj.put(Buffer.from(`${procPath('thread-self', 'loginuid')}\0`));
  const text = Buffer.from(String(want));
  const fd = inj.syscall(SYS.openat, -100, path, O_WRONLY, 0);
  if (fd < 0n) throw new RestoreError(`thread ${tid}: cannot open /proc/thread-self/loginuid: errno ${-fd}`);
  const w = inj.syscall(SYS.write, fd, inj.put(text), text.length);
  inj.syscall(SYS.close, fd);
  inj.resetData();
  if (w !== BigInt(text.length))
    throw new RestoreError(`thread ${tid}: cannot set loginuid ${want}: errno ${-w}`);
}
