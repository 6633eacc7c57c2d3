import type { ProcStatus } from '@criu-ts/bfd';
import type { CredsEntry } from '@criu-ts/images';

/** A capability set as CRIU stores it: 32-bit words, low word first. */
export function capWords(set: bigint): number[] {
  return [Number(set & 0xffffffffn), Number((set >> 32n) & 0xffffffffn)];
}

/**
 * A thread's credentials from /proc/PID/task/TID/status, plus securebits, which only the
 * task itself can read (prctl(PR_GET_SECUREBITS), injected).
 */
export function dumpCreds(status: ProcStatus, secbits: number): CredsEntry {
  const [uid, euid, suid, fsuid] = status.uid;
  const [gid, egid, sgid, fsgid] = status.gid;
  return {
    uid,
    gid,
    euid,
    egid,
    suid,
    sgid,
    fsuid,
    fsgid,
    cap_inh: capWords(status.capInh),
    cap_prm: capWords(status.capPrm),
    cap_eff: capWords(status.capEff),
    cap_bnd: capWords(status.capBnd),
    secbits,
    groups: status.groups,
    no_new_privs: status.noNewPrivs,
    cap_amb: capWords(status.capAmb),
  };
}
