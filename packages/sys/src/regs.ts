// struct user_regs_struct (x86_64, 27 x u64) as a typed view over a Buffer, so registers can be read and
// written in place and handed to PTRACE_SETREGSET without copying.

/** Register names in struct user_regs_struct order (index = u64 slot). */
export const USER_REGS_NAMES = [
  'r15',
  'r14',
  'r13',
  'r12',
  'rbp',
  'rbx',
  'r11',
  'r10',
  'r9',
  'r8',
  'rax',
  'rcx',
  'rdx',
  'rsi',
  'rdi',
  'orig_rax',
  'rip',
  'cs',
  'eflags',
  'rsp',
  'ss',
  'fs_base',
  'gs_base',
  'ds',
  'es',
  'fs',
  'gs',
] as const;

export type RegName = (typeof USER_REGS_NAMES)[number];

/** sizeof(struct user_regs_struct). */
export const USER_REGS_SIZE = USER_REGS_NAMES.length * 8;

const SLOT: Readonly<Record<RegName, number>> = Object.fromEntries(
  USER_REGS_NAMES.map((n, i) => [n, i * 8]),
) as Record<RegName, number>;

const U64 = (1n << 64n) - 1n;

/** The x86_64 general-purpose registers of a task (NT_PRSTATUS). Values are u64 bigints. */
export class UserRegs {
  readonly buffer: Buffer;

  /** Wrap `buffer` (at least 216 bytes, shared, not copied) or allocate zeroed registers. */
  constructor(buffer?: Buffer) {
    if (buffer !== undefined && buffer.length < USER_REGS_SIZE) {
      throw new RangeError(`user_regs_struct needs ${USER_REGS_SIZE} bytes, got ${buffer.length}`);
    }
    this.buffer = buffer ?? Buffer.alloc(USER_REGS_SIZE);
  }

  get(name: RegName): bigint {
    return this.buffer.readBigUInt64LE(SLOT[name]);
  }

  /** Set a register; negative values are stored as their two's complement (orig_rax = -1n). */
  set(name: RegName, value: bigint | number): this {
    this.buffer.writeBigUInt64LE(BigInt(value) & U64, SLOT[name]);
    return this;
  }

  /** A register as a signed value (rax after a failed syscall is -errno). */
  getSigned(name: RegName): bigint {
    return this.buffer.readBigInt64LE(SLOT[name]);
  }

  clone(): UserRegs {
    return new UserRegs(Buffer.from(this.buffer.subarray(0, USER_REGS_SIZE)));
  }

  /** Copy every register from `other` into this object's buffer. */
  copyFrom(other: UserRegs): this {
    other.buffer.copy(this.buffer, 0, 0, USER_REGS_SIZE);
    return this;
  }

  /** Plain object of all registers, e.g. for an image or a log line. */
  toObject(): Record<RegName, bigint> {
    return Object.fromEntries(USER_REGS_NAMES.map((n) => [n, this.get(n)])) as Record<RegName, bigint>;
  }

  toJSON(): Record<RegName, string> {
    return Object.fromEntries(USER_REGS_NAMES.map((n) => [n, `0x${this.get(n).toString(16)}`])) as Record<
      RegName,
      string
    >;
  }

  get r15() {
    return this.get('r15');
  }
  set r15(v: bigint) {
    this.set('r15', v);
  }
  get r14() {
    return this.get('r14');
  }
  set r14(v: bigint) {
    this.set('r14', v);
  }
  get r13() {
    return this.get('r13');
  }
  set r13(v: bigint) {
    this.set('r13', v);
  }
  get r12() {
    return this.get('r12');
  }
  set r12(v: bigint) {
    this.set('r12', v);
  }
  get rbp() {
    return this.get('rbp');
  }
  set rbp(v: bigint) {
    this.set('rbp', v);
  }
  get rbx() {
    return this.get('rbx');
  }
  set rbx(v: bigint) {
    this.set('rbx', v);
  }
  get r11() {
    return this.get('r11');
  }
  set r11(v: bigint) {
    this.set('r11', v);
  }
  get r10() {
    return this.get('r10');
  }
  set r10(v: bigint) {
    this.set('r10', v);
  }
  get r9() {
    return this.get('r9');
  }
  set r9(v: bigint) {
    this.set('r9', v);
  }
  get r8() {
    return this.get('r8');
  }
  set r8(v: bigint) {
    this.set('r8', v);
  }
  get rax() {
    return this.get('rax');
  }
  set rax(v: bigint) {
    this.set('rax', v);
  }
  get rcx() {
    return this.get('rcx');
  }
  set rcx(v: bigint) {
    this.set('rcx', v);
  }
  get rdx() {
    return this.get('rdx');
  }
  set rdx(v: bigint) {
    this.set('rdx', v);
  }
  get rsi() {
    return this.get('rsi');
  }
  set rsi(v: bigint) {
    this.set('rsi', v);
  }
  get rdi() {
    return this.get('rdi');
  }
  set rdi(v: bigint) {
    this.set('rdi', v);
  }
  /** Syscall number the task is in (-1 as 0xffff... when not in a syscall). */
  get orig_rax() {
    return this.get('orig_rax');
  }
  set orig_rax(v: bigint) {
    this.set('orig_rax', v);
  }
  get rip() {
    return this.get('rip');
  }
  set rip(v: bigint) {
    this.set('rip', v);
  }
  get cs() {
    return this.get('cs');
  }
  set cs(v: bigint) {
    this.set('cs', v);
  }
  get eflags() {
    return this.get('eflags');
  }
  set eflags(v: bigint) {
    this.set('eflags', v);
  }
  get rsp() {
    return this.get('rsp');
  }
  set rsp(v: bigint) {
    this.set('rsp', v);
  }
  get ss() {
    return this.get('ss');
  }
  set ss(v: bigint) {
    this.set('ss', v);
  }
  get fs_base() {
    return this.get('fs_base');
  }
  set fs_base(v: bigint) {
    this.set('fs_base', v);
  }
  get gs_base() {
    return this.get('gs_base');
  }
  set gs_base(v: bigint) {
    this.set('gs_base', v);
  }
  get ds() {
    return this.get('ds');
  }
  set ds(v: bigint) {
    this.set('ds', v);
  }
  get es() {
    return this.get('es');
  }
  set es(v: bigint) {
    this.set('es', v);
  }
  get fs() {
    return this.get('fs');
  }
  set fs(v: bigint) {
    this.set('fs', v);
  }
  get gs() {
    return this.get('gs');
  }
  set gs(v: bigint) {
    this.set('gs', v);
  }
}
