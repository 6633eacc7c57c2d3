/*
 * sleeper OUT MS
 *
 * Records CLOCK_MONOTONIC, writes "READY <pid>", then nanosleep()s for MS
 * milliseconds, restarting with the remaining time whenever the sleep is
 * interrupted (EINTR, e.g. by a signal or by a checkpoint/restore).
 *
 *   SLEPT <elapsed_ms>   after the sleep (elapsed per CLOCK_MONOTONIC); exit 0
 *   FAIL short sleep elapsed=<ms> wanted=<ms>   if it woke up too early; exit 1
 *
 * A harmless SIGUSR1 handler is installed so a test can interrupt the
 * sleep on purpose and exercise the EINTR/restart path.
 */
#include "common.h"

#include <signal.h>

static void on_sigusr1(int sig)
{
	(void)sig;
}

int main(int argc, char **argv)
{
	struct timespec req, rem;
	struct sigaction sa;
	int64_t start, elapsed_ns;
	long long ms;

	report_init(argc, argv, 2, 2, "OUT MS");
	ms = parse_num("MS", argv[2], 0, 1000LL * 86400 * 365);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1; /* no SA_RESTART: nanosleep gets EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	start = mono_ns();
	report_ready();

	req.tv_sec = (time_t)(ms / 1000);
	req.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&req, &rem) < 0) {
		if (errno != EINTR)
			fail("nanosleep errno=%d", errno);
		req = rem;
	}

	elapsed_ns = mono_ns() - start;
	if (elapsed_ns < ms * 1000000LL)
		fail("short sleep elapsed=%lld wanted=%lld", (long long)(elapsed_ns / 1000000), ms);
	report("SLEPT %lld", (long long)(elapsed_ns / 1000000));
	return 0;
}
