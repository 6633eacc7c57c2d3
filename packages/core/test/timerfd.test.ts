// timerfd settings a restore gives the kernel, from the image's entry (the end-to-end timerfd tests are
// in apps/cli/test/restore-eventfds.test.ts).
import type { TimerfdEntry } from '@criu-ts/images';
import { describe, expect, it } from 'vitest';
import { timerSettings } from '../src/files/timerfd/restore.js';

describe('timerfd', () => {
  it('timerSettings: relative, absolute, expired periodic and expired one-shot timers', () => {
    const base: TimerfdEntry = {
      id: 1,
      flags: 2,
      fown: { uid: 0, euid: 0, signum: 0, pid_type: 0, pid: 0 },
      clockid: 1,
      ticks: 0n,
      settime_flags: 0,
      vsec: 2n,
      vnsec: 500n,
      isec: 0n,
      insec: 0n,
    };
    const now = () => ({ sec: 100n, nsec: 999_999_900n });
    expect(timerSettings(base, now)).toEqual({
      flags: 0,
      value: { sec: 2n, nsec: 500n },
      interval: { sec: 0n, nsec: 0n },
    });
    expect(timerSettings({ ...base, settime_flags: 1 }, now).value).toEqual({ sec: 103n, nsec: 400n });
    const periodic = { ...base, vsec: 0n, vnsec: 0n, insec: 20_000_000n };
    expect(timerSettings({ ...periodic, ticks: 3n }, now).value).toEqual({ sec: 0n, nsec: 20_000_000n });
    expect(timerSettings(periodic, now).value).toEqual({ sec: 0n, nsec: 1n });
    expect(timerSettings({ ...base, vsec: 0n, vnsec: 0n, ticks: 1n }, now).value).toEqual({
      sec: 0n,
      nsec: 0n,
    });
  });
});
