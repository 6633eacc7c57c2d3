// --cpu-cap: which CPU checks a restore (and `cpuinfo check`) makes, CRIU's bits and syntax.

/** CRIU's CPU_CAP_* bits (criu_opts.cpu_cap carries the same numbers). */
export const CPU_CAP = {
  NONE: 0,
  /** FPU: the FPU features, the XSAVE components and both XSAVE sizes. */
  FPU: 1,
  /** Strict: every capability word equal. */
  CPU: 2,
  /** Instructions: what the image's CPU could run, this one can. */
  INS: 4,
  /** Write cpuinfo.img on dump and check it on restore. */
  IMAGE: 8,
  ALL: 1 | 2 | 4,
  /** Without --cpu-cap: fpu and ins, and no cpuinfo.img written or checked. */
  DEFAULT: 1 | 4,
} as const;

/** A --cpu-cap value CRIU would refuse. */
export class CpuCapSyntaxError extends Error {
  override name = 'CpuCapSyntaxError';
}

/**
 * Applies `--cpu-cap[=LIST]` to `cap` as CRIU does: without a value, all (and the image); otherwise a
 * comma-separated list of fpu, cpu, ins, all, none, each added, or taken away after `^`. Any result but
 * none also writes (dump) and checks (restore) cpuinfo.img.
 */
export function applyCpuCap(cap: number, value: string | undefined): number {
  if (value === undefined) return (cap | CPU_CAP.ALL | CPU_CAP.IMAGE) >>> 0;
  let c = cap;
  let inverse = false;
  let s = value;
  const set = (bits: number) => {
    c = inverse ? c & ~bits : c | bits;
  };
  while (s.length > 0) {
    if (s[0] === '^') {
      inverse = !inverse;
      s = s.slice(1);
    } else if (s[0] === ',') {
      inverse = false;
      s = s.slice(1);
    } else if (s.startsWith('fpu')) {
      set(CPU_CAP.FPU);
      s = s.slice(3);
    } else if (s.startsWith('all')) {
      set(CPU_CAP.ALL);
      s = s.slice(3);
    } else if (s.startsWith('none')) {
      c = inverse ? CPU_CAP.ALL : CPU_CAP.NONE;
      s = s.slice(4);
    } else if (s.startsWith('cpu')) {
      set(CPU_CAP.CPU);
      s = s.slice(3);
    } else if (s.startsWith('ins')) {
      set(CPU_CAP.INS);
      s = s.slice(3);
    } else throw new CpuCapSyntaxError(`Unknown FPU mode \`${value}' selected`);
  }
  if (c !== CPU_CAP.NONE) c |= CPU_CAP.IMAGE;
  return c >>> 0;
}

/** The checks of a cap as words: "fpu,ins". */
export function cpuCapNames(cap: number): string {
  const names = (['fpu', 'cpu', 'ins'] as const).filter(
    (n) => cap & CPU_CAP[n.toUpperCase() as 'FPU' | 'CPU' | 'INS'],
  );
  return names.length ? names.join(',') : 'none';
}
