export interface TestResources {
  /** A fresh temp dir, removed by cleanup(). */
  tempDir(prefix?: string): string;
  /** Remember pids to kill and reap in cleanup() (only while they are our descendants). */
  track(...pids: number[]): void;
  /** Run `fn` in cleanup(), before processes are killed (newest first). */
  onCleanup(fn: () => void): void;
  /** Run `fn` in cleanup(), once the processes are gone (newest first): unmounting. */
  afterKill(fn: () => void): void;
  /** Undo everything; throws the first error once all of it was tried. */
  cleanup(): void;
}

/** One test file's resources; `killAndReap` is compel's, `prefix` names its temp dirs. */
export function testResources(opts: { killAndReap: (pid: number) => void; prefix: string }): TestResources;
