export interface ReadmeBlock {
  code: string;
  /** 1-based line of the opening fence in the README. */
  line: number;
  /** The heading above it. */
  section: string;
}
export interface ExampleRun {
  code: number;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}
export function readmeBlocks(file: string, lang: string, section?: string): ReadmeBlock[];
export function typecheckExample(pkgDir: string, block: ReadmeBlock): string[];
export function runExample(
  pkgDir: string,
  block: ReadmeBlock,
  opts?: { lang?: 'ts' | 'sh'; args?: string[]; env?: Record<string, string>; timeoutMs?: number },
): Promise<ExampleRun>;
