/*
 * busy OUT
 *
 * Spins in user mode, calling clock_gettime(CLOCK_MONOTONIC) (served by
 * the vDSO, so no syscall) in a tight loop and checking that time never
 * goes backwards.  Every 100 ms of monotonic time it writes
 *
 *   TICK <n>        n = 1, 2, 3, ...
 *
 * Self-check: "FAIL time went backwards by <ns> ns" if a reading is
 * smaller than the previous one (e.g. a broken vDSO or clock after
 * restore).  The process is always runnable (state R), which is the
 * interesting case for freezing.
 */
#include "common.h"

int main(int argc, char **argv)
{
	unsigned long long ticks = 0;
	int64_t prev, next;

	report_init(argc, argv, 1, 1, "OUT");
	report_ready();

	prev = mono_ns();
	next = prev + 100000000LL;
	for (;;) {
		int64_t now = mono_ns();

		if (now < prev)
			fail("time went backwards by %lld ns", (long long)(prev - now));
		prev = now;
		if (now >= next) {
			report("TICK %llu", ++ticks);
			/* One tick per interval even after a long freeze. */
			next = now + 100000000LL;
		}
	}
}
