// Process-level constants: wait flags, prctl options, kcmp types, pidfd flags, rlimits (x86_64).

// wait4/waitid options.
export const WNOHANG = 0x00000001;
export const WUNTRACED = 0x00000002;
export const WSTOPPED = 0x00000002;
export const WEXITED = 0x00000004;
export const WCONTINUED = 0x00000008;
export const WNOWAIT = 0x01000000;
export const __WNOTHREAD = 0x20000000;
/** Wait for every child, clone or not: needed to see the ptrace stops of traced threads. */
export const __WALL = 0x40000000;
export const __WCLONE = 0x80000000;

// waitid idtype.
export const P_ALL = 0;
export const P_PID = 1;
export const P_PGID = 2;
export const P_PIDFD = 3;

// kcmp(2) types.
export const KCMP_FILE = 0;
export const KCMP_VM = 1;
export const KCMP_FILES = 2;
export const KCMP_FS = 3;
export const KCMP_SIGHAND = 4;
export const KCMP_IO = 5;
export const KCMP_SYSVSEM = 6;
export const KCMP_EPOLL_TFD = 7;

// pidfd_open(2) / pidfd_send_signal(2) flags.
export const PIDFD_NONBLOCK = 0o4000;
/** pidfd of a thread rather than a thread-group leader (Linux 6.9). */
export const PIDFD_THREAD = 0o200;
export const PIDFD_SIGNAL_THREAD = 1;
export const PIDFD_SIGNAL_THREAD_GROUP = 2;
export const PIDFD_SIGNAL_PROCESS_GROUP = 4;

// prctl(2) options.
export const PR_SET_PDEATHSIG = 1;
export const PR_GET_PDEATHSIG = 2;
export const PR_GET_DUMPABLE = 3;
export const PR_SET_DUMPABLE = 4;
export const PR_GET_UNALIGN = 5;
export const PR_SET_UNALIGN = 6;
export const PR_GET_KEEPCAPS = 7;
export const PR_SET_KEEPCAPS = 8;
export const PR_GET_FPEMU = 9;
export const PR_SET_FPEMU = 10;
export const PR_GET_FPEXC = 11;
export const PR_SET_FPEXC = 12;
export const PR_GET_TIMING = 13;
export const PR_SET_TIMING = 14;
export const PR_SET_NAME = 15;
export const PR_GET_NAME = 16;
export const PR_GET_ENDIAN = 19;
export const PR_SET_ENDIAN = 20;
export const PR_GET_SECCOMP = 21;
export const PR_SET_SECCOMP = 22;
export const PR_CAPBSET_READ = 23;
export const PR_CAPBSET_DROP = 24;
export const PR_GET_TSC = 25;
export const PR_SET_TSC = 26;
export const PR_GET_SECUREBITS = 27;
export const PR_SET_SECUREBITS = 28;
export const PR_SET_TIMERSLACK = 29;
export const PR_GET_TIMERSLACK = 30;
export const PR_TASK_PERF_EVENTS_DISABLE = 31;
export const PR_TASK_PERF_EVENTS_ENABLE = 32;
export const PR_MCE_KILL = 33;
export const PR_MCE_KILL_GET = 34;
export const PR_SET_MM = 35;
export const PR_SET_CHILD_SUBREAPER = 36;
export const PR_GET_CHILD_SUBREAPER = 37;
export const PR_SET_NO_NEW_PRIVS = 38;
export const PR_GET_NO_NEW_PRIVS = 39;
export const PR_GET_TID_ADDRESS = 40;
export const PR_SET_THP_DISABLE = 41;
/** timer_create() takes the timer id from the caller (Linux 6.15+, for restore). */
export const PR_TIMER_CREATE_RESTORE_IDS = 77;
export const PR_GET_THP_DISABLE = 42;
export const PR_SET_FP_MODE = 45;
export const PR_GET_FP_MODE = 46;
export const PR_CAP_AMBIENT = 47;
export const PR_GET_SPECULATION_CTRL = 52;
export const PR_SET_SPECULATION_CTRL = 53;
export const PR_SET_TAGGED_ADDR_CTRL = 55;
export const PR_GET_TAGGED_ADDR_CTRL = 56;
export const PR_SET_IO_FLUSHER = 57;
export const PR_GET_IO_FLUSHER = 58;
export const PR_SET_SYSCALL_USER_DISPATCH = 59;
export const PR_SCHED_CORE = 62;
export const PR_SET_MDWE = 65;
export const PR_GET_MDWE = 66;
export const PR_SET_MEMORY_MERGE = 67;
export const PR_GET_MEMORY_MERGE = 68;
export const PR_SET_VMA = 0x53564d41;

// PR_SET_MM sub-options.
export const PR_SET_MM_START_CODE = 1;
export const PR_SET_MM_END_CODE = 2;
export const PR_SET_MM_START_DATA = 3;
export const PR_SET_MM_END_DATA = 4;
export const PR_SET_MM_START_STACK = 5;
export const PR_SET_MM_START_BRK = 6;
export const PR_SET_MM_BRK = 7;
export const PR_SET_MM_ARG_START = 8;
export const PR_SET_MM_ARG_END = 9;
export const PR_SET_MM_ENV_START = 10;
export const PR_SET_MM_ENV_END = 11;
export const PR_SET_MM_AUXV = 12;
export const PR_SET_MM_EXE_FILE = 13;
export const PR_SET_MM_MAP = 14;
export const PR_SET_MM_MAP_SIZE = 15;

// PR_CAP_AMBIENT sub-options.
export const PR_CAP_AMBIENT_IS_SET = 1;
export const PR_CAP_AMBIENT_RAISE = 2;
export const PR_CAP_AMBIENT_LOWER = 3;
export const PR_CAP_AMBIENT_CLEAR_ALL = 4;

// Resource limits (prlimit64).
export const RLIMIT_CPU = 0;
export const RLIMIT_FSIZE = 1;
export const RLIMIT_DATA = 2;
export const RLIMIT_STACK = 3;
export const RLIMIT_CORE = 4;
export const RLIMIT_RSS = 5;
export const RLIMIT_NPROC = 6;
export const RLIMIT_NOFILE = 7;
export const RLIMIT_MEMLOCK = 8;
export const RLIMIT_AS = 9;
export const RLIMIT_LOCKS = 10;
export const RLIMIT_SIGPENDING = 11;
export const RLIMIT_MSGQUEUE = 12;
export const RLIMIT_NICE = 13;
export const RLIMIT_RTPRIO = 14;
export const RLIMIT_RTTIME = 15;
export const RLIM_NLIMITS = 16;
export const RLIM_INFINITY = 0xffffffffffffffffn;

// seccomp(2) / prctl(PR_SET_SECCOMP) modes.
export const SECCOMP_MODE_DISABLED = 0;
export const SECCOMP_MODE_STRICT = 1;
export const SECCOMP_MODE_FILTER = 2;
export const SECCOMP_FILTER_FLAG_TSYNC = 1;
export const SECCOMP_FILTER_FLAG_LOG = 2;
export const SECCOMP_FILTER_FLAG_SPEC_ALLOW = 4;
// seccomp(2) operations.
export const SECCOMP_SET_MODE_STRICT = 0;
export const SECCOMP_SET_MODE_FILTER = 1;

// Capabilities: capget/capset header version, securebits (linux/securebits.h).
export const LINUX_CAPABILITY_VERSION_3 = 0x20080522;
export const SECBIT_NO_SETUID_FIXUP = 1 << 2;

// membarrier(2) commands.
export const MEMBARRIER_CMD_GET_REGISTRATIONS = 1 << 9;

// Auxiliary vector (asm-generic auxvec.h): the entry that ends it.
export const AT_NULL = 0;
