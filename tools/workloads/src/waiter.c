/*
 * waiter OUT MODE [MS]
 *
 * Blocks in one syscall, so that a test can dump it there and check what the
 * images say and how it goes on after a restore. SIGUSR1 has a handler
 * (SA_RESTART) that only sets a flag. Every mode writes "READY <pid>", then
 * "WAITING <mode>" just before it blocks (poll /proc/<pid>/syscall to know it
 * is in the syscall).
 *
 *   pause          pause() until SIGUSR1 came:           WOKE pause
 *   futex          FUTEX_WAIT (private, no timeout) on a word the SIGUSR1
 *                  handler sets; EINTR and EAGAIN are counted and waited on
 *                  again:                                 WOKE futex eintr=<n>
 *                  (an interrupted wait without timeout is restarted by the
 *                  kernel: eintr stays 0 unless a restore gets it wrong)
 *   futex-timed MS FUTEX_WAIT with a relative timeout of MS on a word nobody
 *                  changes, waited on again after EINTR with what is left:
 *                  TIMEDOUT elapsed=<ms> eintr=<n>, or FAIL early wake-up
 *   itimer MS      SIGALRM blocked, ITIMER_REAL every MS ms; once a SIGALRM is
 *                  pending (the timer then reads 0 until it is taken) it
 *                  writes PENDING and waits in pause() for SIGUSR1. Then it
 *                  takes three SIGALRMs with sigwaitinfo():
 *                  ALRM <i> <ms since SIGUSR1>  (the first is the pending one,
 *                  at once; the others one interval apart), then TICKING with
 *                  the interval getitimer() reports, and exits 0. A timer lost
 *                  on the way leaves it blocked in sigwaitinfo().
 */
#include "common.h"

#include <linux/futex.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>

static volatile sig_atomic_t got_usr1;
static int word;

static void on_usr1(int sig)
{
	(void)sig;
	got_usr1 = 1;
	__atomic_store_n(&word, 1, __ATOMIC_SEQ_CST);
}

static long futex_wait(int *addr, int val, const struct timespec *timeout)
{
	return syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, timeout, NULL, 0);
}

static void do_pause(void)
{
	report("WAITING pause");
	while (!got_usr1)
		pause();
	report("WOKE pause");
}

static void do_futex(void)
{
	int eintr = 0;

	report("WAITING futex");
	while (__atomic_load_n(&word, __ATOMIC_SEQ_CST) == 0) {
		if (futex_wait(&word, 0, NULL) == 0)
			continue;
		if (errno == EINTR)
			eintr++;
		else if (errno != EAGAIN)
			fail("futex errno=%d", errno);
	}
	report("WOKE futex eintr=%d", eintr);
}

static void do_futex_timed(long long ms)
{
	int64_t start = mono_ns(), deadline = start + ms * 1000000LL;
	int never = 0, eintr = 0;

	report("WAITING futex-timed");
	for (;;) {
		int64_t left = deadline - mono_ns();
		struct timespec ts;

		if (left <= 0)
			break;
		ts.tv_sec = left / 1000000000LL;
		ts.tv_nsec = left % 1000000000LL;
		if (futex_wait(&never, 0, &ts) == 0)
			fail("futex woken up on a word nobody changes");
		if (errno == ETIMEDOUT)
			break;
		if (errno == EINTR)
			eintr++;
		else if (errno != EAGAIN)
			fail("futex errno=%d", errno);
	}
	if (mono_ns() < deadline)
		fail("futex timed out early: %lld of %lld ms", (long long)((mono_ns() - start) / 1000000), ms);
	report("TIMEDOUT elapsed=%lld eintr=%d", (long long)((mono_ns() - start) / 1000000), eintr);
}

static void do_itimer(long long ms)
{
	struct itimerval it = { { ms / 1000, (ms % 1000) * 1000 }, { ms / 1000, (ms % 1000) * 1000 } };
	sigset_t alrm, pending;
	int64_t woke;

	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	if (sigprocmask(SIG_BLOCK, &alrm, NULL) != 0)
		fail("sigprocmask errno=%d", errno);
	if (setitimer(ITIMER_REAL, &it, NULL) != 0)
		fail("setitimer errno=%d", errno);
	do {
		sleep_ms(5);
		if (sigpending(&pending) != 0)
			fail("sigpending errno=%d", errno);
	} while (!sigismember(&pending, SIGALRM));
	report("PENDING");
	report("WAITING itimer");
	while (!got_usr1)
		pause();
	woke = mono_ns();
	for (int i = 1; i <= 3; i++) {
		siginfo_t si;

		if (sigwaitinfo(&alrm, &si) != SIGALRM)
			fail("sigwaitinfo errno=%d", errno);
		report("ALRM %d %lld", i, (long long)((mono_ns() - woke) / 1000000));
	}
	if (getitimer(ITIMER_REAL, &it) != 0)
		fail("getitimer errno=%d", errno);
	report("TICKING %lld", (long long)(it.it_interval.tv_sec * 1000 + it.it_interval.tv_usec / 1000));
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	const char *mode;

	report_init(argc, argv, 2, 3, "OUT pause|futex|futex-timed MS|itimer MS");
	mode = argv[2];
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	report_ready();

	if (strcmp(mode, "pause") == 0 && argc == 3)
		do_pause();
	else if (strcmp(mode, "futex") == 0 && argc == 3)
		do_futex();
	else if (strcmp(mode, "futex-timed") == 0 && argc == 4)
		do_futex_timed(parse_num("MS", argv[3], 1, 1000LL * 86400));
	else if (strcmp(mode, "itimer") == 0 && argc == 4)
		do_itimer(parse_num("MS", argv[3], 1, 1000LL * 86400));
	else
		fail("usage: waiter OUT pause|futex|futex-timed MS|itimer MS");
	return 0;
}
