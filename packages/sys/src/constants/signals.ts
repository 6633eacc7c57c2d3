// Signal numbers and related constants for Linux x86_64 (asm/signal.h, asm-generic/siginfo.h).

export const SIGHUP = 1;
export const SIGINT = 2;
export const SIGQUIT = 3;
export const SIGILL = 4;
export const SIGTRAP = 5;
export const SIGABRT = 6;
export const SIGIOT = 6;
export const SIGBUS = 7;
export const SIGFPE = 8;
export const SIGKILL = 9;
export const SIGUSR1 = 10;
export const SIGSEGV = 11;
export const SIGUSR2 = 12;
export const SIGPIPE = 13;
export const SIGALRM = 14;
export const SIGTERM = 15;
export const SIGSTKFLT = 16;
export const SIGCHLD = 17;
export const SIGCONT = 18;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;
export const SIGURG = 23;
export const SIGXCPU = 24;
export const SIGXFSZ = 25;
export const SIGVTALRM = 26;
export const SIGPROF = 27;
export const SIGWINCH = 28;
export const SIGIO = 29;
export const SIGPOLL = 29;
export const SIGPWR = 30;
export const SIGSYS = 31;
/** The kernel's first real-time signal (glibc reserves 32 and 33 and reports SIGRTMIN as 34). */
export const SIGRTMIN = 32;
export const SIGRTMAX = 64;
/** Highest signal number + 1; a sigset_t the kernel uses is 64 bits (8 bytes). */
export const NSIG = 65;
export const SIGSET_SIZE = 8;

const SIGNAL_NAMES: readonly string[] = [
  '',
  'SIGHUP',
  'SIGINT',
  'SIGQUIT',
  'SIGILL',
  'SIGTRAP',
  'SIGABRT',
  'SIGBUS',
  'SIGFPE',
  'SIGKILL',
  'SIGUSR1',
  'SIGSEGV',
  'SIGUSR2',
  'SIGPIPE',
  'SIGALRM',
  'SIGTERM',
  'SIGSTKFLT',
  'SIGCHLD',
  'SIGCONT',
  'SIGSTOP',
  'SIGTSTP',
  'SIGTTIN',
  'SIGTTOU',
  'SIGURG',
  'SIGXCPU',
  'SIGXFSZ',
  'SIGVTALRM',
  'SIGPROF',
  'SIGWINCH',
  'SIGIO',
  'SIGPWR',
  'SIGSYS',
];

/** 'SIGTERM' for 15, 'SIGRTMIN+3' for 35, 'SIG<n>' for a number outside 1..64. */
export function signalName(sig: number): string {
  if (sig >= 1 && sig < SIGRTMIN) return SIGNAL_NAMES[sig] ?? `SIG${sig}`;
  if (sig === SIGRTMIN) return 'SIGRTMIN';
  if (sig === SIGRTMAX) return 'SIGRTMAX';
  if (sig > SIGRTMIN && sig < SIGRTMAX) return `SIGRTMIN+${sig - SIGRTMIN}`;
  return `SIG${sig}`;
}

/** The number for 'SIGTERM' / 'TERM' / 'SIGRTMIN+3'; undefined when unknown. */
export function signalNumber(name: string): number | undefined {
  const n = name.startsWith('SIG') ? name : `SIG${name}`;
  if (n === 'SIGRTMIN') return SIGRTMIN;
  if (n === 'SIGRTMAX') return SIGRTMAX;
  const rt = /^SIGRTMIN\+(\d+)$/.exec(n);
  if (rt) {
    const sig = SIGRTMIN + Number(rt[1]);
    return sig <= SIGRTMAX ? sig : undefined;
  }
  if (n === 'SIGIOT') return SIGIOT;
  if (n === 'SIGPOLL') return SIGPOLL;
  const i = SIGNAL_NAMES.indexOf(n);
  return i > 0 ? i : undefined;
}

/** Bit of `sig` in a kernel sigset_t (u64). */
export function sigmaskBit(sig: number): bigint {
  return 1n << BigInt(sig - 1);
}

// rt_sigprocmask(2) how.
export const SIG_BLOCK = 0;
export const SIG_UNBLOCK = 1;
export const SIG_SETMASK = 2;

// sa_handler special values.
export const SIG_DFL = 0n;
export const SIG_IGN = 1n;

// sigaction sa_flags.
export const SA_NOCLDSTOP = 0x1;
export const SA_NOCLDWAIT = 0x2;
export const SA_SIGINFO = 0x4;
export const SA_UNSUPPORTED = 0x400;
export const SA_EXPOSE_TAGBITS = 0x800;
export const SA_RESTORER = 0x04000000;
export const SA_ONSTACK = 0x08000000;
export const SA_RESTART = 0x10000000;
export const SA_NODEFER = 0x40000000;
export const SA_RESETHAND = 0x80000000;

// sigaltstack ss_flags.
export const SS_ONSTACK = 1;
export const SS_DISABLE = 2;
export const SS_AUTODISARM = 1 << 31;

// sigevent sigev_notify: signal a given thread (timer_create).
export const SIGEV_THREAD_ID = 4;

// si_code values (generic).
export const SI_USER = 0;
export const SI_KERNEL = 0x80;
export const SI_QUEUE = -1;
export const SI_TIMER = -2;
export const SI_MESGQ = -3;
export const SI_ASYNCIO = -4;
export const SI_SIGIO = -5;
export const SI_TKILL = -6;
// SIGCHLD si_code.
export const CLD_EXITED = 1;
export const CLD_KILLED = 2;
export const CLD_DUMPED = 3;
export const CLD_TRAPPED = 4;
export const CLD_STOPPED = 5;
export const CLD_CONTINUED = 6;
// SIGTRAP si_code.
export const TRAP_BRKPT = 1;
export const TRAP_TRACE = 2;
export const TRAP_BRANCH = 3;
export const TRAP_HWBKPT = 4;
export const TRAP_UNK = 5;
// SIGSYS si_code.
export const SYS_SECCOMP = 1;
export const SYS_USER_DISPATCH = 2;
