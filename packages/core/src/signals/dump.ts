import type { SignalQueueEntry } from '@criu-ts/images';
import { ptracePeekSiginfo } from '@criu-ts/sys';

/** Pending signals of a thread (private queue) or of the whole task (shared), as raw siginfo. */
export function pendingSignals(tid: number, shared: boolean): Buffer[] {
  return ptracePeekSiginfo(tid, { shared }).map((s) => s.raw);
}

export function signalQueue(signals: Buffer[]): SignalQueueEntry {
  return { signals: signals.map((siginfo) => ({ siginfo })) };
}
