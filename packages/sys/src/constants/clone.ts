// clone(2)/clone3(2)/unshare(2) flags (linux/sched.h). bigint, since clone3 flags are a u64 and
// CLONE_IO / CLONE_CLEAR_SIGHAND do not fit JavaScript's 32-bit bitwise operators.

export const CSIGNAL = 0x000000ffn;
export const CLONE_NEWTIME = 0x00000080n;
export const CLONE_VM = 0x00000100n;
export const CLONE_FS = 0x00000200n;
export const CLONE_FILES = 0x00000400n;
export const CLONE_SIGHAND = 0x00000800n;
export const CLONE_PIDFD = 0x00001000n;
export const CLONE_PTRACE = 0x00002000n;
export const CLONE_VFORK = 0x00004000n;
export const CLONE_PARENT = 0x00008000n;
export const CLONE_THREAD = 0x00010000n;
export const CLONE_NEWNS = 0x00020000n;
export const CLONE_SYSVSEM = 0x00040000n;
export const CLONE_SETTLS = 0x00080000n;
export const CLONE_PARENT_SETTID = 0x00100000n;
export const CLONE_CHILD_CLEARTID = 0x00200000n;
export const CLONE_DETACHED = 0x00400000n;
export const CLONE_UNTRACED = 0x00800000n;
export const CLONE_CHILD_SETTID = 0x01000000n;
export const CLONE_NEWCGROUP = 0x02000000n;
export const CLONE_NEWUTS = 0x04000000n;
export const CLONE_NEWIPC = 0x08000000n;
export const CLONE_NEWUSER = 0x10000000n;
export const CLONE_NEWPID = 0x20000000n;
export const CLONE_NEWNET = 0x40000000n;
export const CLONE_IO = 0x80000000n;
/** clone3 only. */
export const CLONE_CLEAR_SIGHAND = 0x100000000n;
/** clone3 only: place the child in the cgroup given by clone_args.cgroup. */
export const CLONE_INTO_CGROUP = 0x200000000n;

/** struct clone_args sizes the kernel accepts: VER0 (no set_tid), VER1 (+set_tid), VER2 (+cgroup). */
export const CLONE_ARGS_SIZE_VER0 = 64;
export const CLONE_ARGS_SIZE_VER1 = 80;
export const CLONE_ARGS_SIZE_VER2 = 88;
