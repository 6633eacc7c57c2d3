// /proc/PID/stat and /proc/PID/task/TID/stat (proc(5), fs/proc/array.c do_task_stat).

import { Cursor } from './cursor.js';

/** One /proc/PID/stat record. Field numbers (1-based) follow proc(5). */
export interface ProcStat {
  /** (1) */ pid: number;
  /** (2) raw comm, any bytes except that it never exceeds 64 bytes; taken up to the last ')'. */
  comm: string;
  /** (3) R S D Z T t X I ... */ state: string;
  /** (4) */ ppid: number;
  /** (5) */ pgrp: number;
  /** (6) */ session: number;
  /** (7) */ ttyNr: number;
  /** (8) */ tpgid: number;
  /** (9) PF_* flags */ flags: number;
  /** (10) */ minflt: bigint;
  /** (11) */ cminflt: bigint;
  /** (12) */ majflt: bigint;
  /** (13) */ cmajflt: bigint;
  /** (14) clock ticks */ utime: bigint;
  /** (15) */ stime: bigint;
  /** (16) */ cutime: bigint;
  /** (17) */ cstime: bigint;
  /** (18) */ priority: number;
  /** (19) */ nice: number;
  /** (20) */ numThreads: number;
  /** (21) */ itrealvalue: bigint;
  /** (22) clock ticks since boot */ starttime: bigint;
  /** (23) bytes */ vsize: bigint;
  /** (24) pages */ rss: bigint;
  /** (25) */ rsslim: bigint;
  /** (26) */ startCode: bigint;
  /** (27) */ endCode: bigint;
  /** (28) */ startStack: bigint;
  /** (29) */ kstkesp: bigint;
  /** (30) */ kstkeip: bigint;
  /** (31) obsolete, see status */ signal: bigint;
  /** (32) */ blocked: bigint;
  /** (33) */ sigignore: bigint;
  /** (34) */ sigcatch: bigint;
  /** (35) */ wchan: bigint;
  /** (36) */ nswap: bigint;
  /** (37) */ cnswap: bigint;
  /** (38) */ exitSignal: number;
  /** (39) */ processor: number;
  /** (40) */ rtPriority: number;
  /** (41) */ policy: number;
  /** (42) */ delayacctBlkioTicks: bigint;
  /** (43) */ guestTime: bigint;
  /** (44) */ cguestTime: bigint;
  /** (45) */ startData: bigint;
  /** (46) */ endData: bigint;
  /** (47) */ startBrk: bigint;
  /** (48) */ argStart: bigint;
  /** (49) */ argEnd: bigint;
  /** (50) */ envStart: bigint;
  /** (51) */ envEnd: bigint;
  /** (52) */ exitCode: number;
}

const cur = new Cursor(Buffer.alloc(0));

/** Parse the bytes [0, len) of a stat file. Fields missing on old kernels are 0. */
export function parseStat(buf: Buffer, len = buf.length): ProcStat {
  const c = cur.reset(buf, 0, len);
  const pid = c.dec();
  const open = buf.indexOf(0x28 /* ( */, c.pos);
  const close = buf.lastIndexOf(0x29 /* ) */, len - 1);
  if (open < 0 || close < open || close >= len) throw new Error('stat: no (comm)');
  const comm = buf.toString('utf8', open + 1, close);
  c.pos = close + 1;
  c.skipSpaces();
  const stateEnd = c.fieldEnd();
  const state = buf.toString('latin1', c.pos, stateEnd);
  c.pos = stateEnd;
  const d = () => c.dec();
  const u = () => c.decBig();
  return {
    pid,
    comm,
    state,
    ppid: d(),
    pgrp: d(),
    session: d(),
    ttyNr: d(),
    tpgid: d(),
    flags: d(),
    minflt: u(),
    cminflt: u(),
    majflt: u(),
    cmajflt: u(),
    utime: u(),
    stime: u(),
    cutime: u(),
    cstime: u(),
    priority: d(),
    nice: d(),
    numThreads: d(),
    itrealvalue: u(),
    starttime: u(),
    vsize: u(),
    rss: u(),
    rsslim: u(),
    startCode: u(),
    endCode: u(),
    startStack: u(),
    kstkesp: u(),
    kstkeip: u(),
    signal: u(),
    blocked: u(),
    sigignore: u(),
    sigcatch: u(),
    wchan: u(),
    nswap: u(),
    cnswap: u(),
    exitSignal: d(),
    processor: d(),
    rtPriority: d(),
    policy: d(),
    delayacctBlkioTicks: u(),
    guestTime: u(),
    cguestTime: u(),
    startData: u(),
    endData: u(),
    startBrk: u(),
    argStart: u(),
    argEnd: u(),
    envStart: u(),
    envEnd: u(),
    exitCode: d(),
  };
}
