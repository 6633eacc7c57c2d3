/*
 * epoller OUT [fork] [pipe]
 *
 * One epoll set watching an eventfd, a periodic timerfd, a one-shot timerfd
 * and a signalfd (and a pipe with "pipe"), plus files it does not watch
 * whose state only shows when read.  Fixed fds (the report is fd 3):
 *
 *   4  epoll
 *   5  evfd    eventfd, EFD_NONBLOCK                 watched, data 1
 *   6  cntfd   eventfd holding 0x123456789ab (written by itself at start)
 *   7  semfd   eventfd(3, EFD_SEMAPHORE|EFD_NONBLOCK)
 *   8  sigfd   signalfd {SIGUSR1, SIGUSR2, SIGHUP}, SFD_NONBLOCK, signals
 *              blocked                                watched, data 3
 *   9  tickfd  timerfd MONOTONIC every 100 ms         watched, data 4
 *   10 longfd  timerfd MONOTONIC one-shot in 3600 s   (never read)
 *   11 lazyfd  timerfd MONOTONIC every 20 ms, never read until asked: at
 *              any later time it has expired unread
 *   12 absfd   timerfd REALTIME, TFD_TIMER_ABSTIME, one-shot at start+3600 s
 *   13 soonfd  timerfd MONOTONIC one-shot in 1500 ms watched, data 5
 *   14,15      pipe read/write ends ("pipe")          read end watched, data 6
 *   16 xfd     eventfd ("fork"), watched EPOLLIN|EPOLLONESHOT, data 7
 *
 * Report lines (after READY):
 *   EVENTFD <value>          evfd became readable; the value read
 *   SIGNAL <signo>           a signal arrived through the signalfd
 *   ONESHOT <expirations>    soonfd fired (must be 1, and only once)
 *   PIPE <text>              data from the pipe
 *   XFD <events hex>         ("fork") the child's eventfd became readable
 *   on SIGUSR2, after SIGNAL 12, the state of what is not watched:
 *     COUNTER <hex>            read of cntfd (or EAGAIN)
 *     SEM <r1> <r2> <r3> <r4>  four reads of semfd: 1 1 1 EAGAIN expected
 *     LAZY <expirations>       read of lazyfd
 *     TICKS <total> <ms>       tickfd expirations read so far, ms since armed
 *     STATE done
 *
 * "fork": after the set-up the process forks; both hold every fd and the
 * epoll.  The parent closes xfd (the epoll keeps it: the child holds it) and
 * runs the loop; the child writes "CHILD <pid>", waits for SIGUSR1 with
 * sigwaitinfo and then writes 7 to xfd ("CHILD wrote 7"), so the parent's
 * epoll reports XFD.
 */
#include "common.h"

#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <sys/wait.h>

enum { D_EVFD = 1, D_SIG = 3, D_TICK = 4, D_SOON = 5, D_PIPE = 6, D_XFD = 7 };

static int64_t ticks_armed_ns;
static uint64_t ticks_total;
static int soon_seen;

/* Open something and move it to fd `want` (all lower fds are taken). */
static void at(int fd, int want, const char *what)
{
	if (fd < 0)
		fail("%s errno=%d", what, errno);
	if (fd != want) {
		if (dup2(fd, want) != want)
			fail("dup2 %s errno=%d", what, errno);
		close(fd);
	}
}

static void arm(int fd, int flags, time_t vs, long vns, time_t is, long ins)
{
	struct itimerspec its = { { is, ins }, { vs, vns } };

	if (timerfd_settime(fd, flags, &its, NULL) != 0)
		fail("timerfd_settime fd %d errno=%d", fd, errno);
}

static void watch(int ep, int fd, uint32_t events, uint64_t data)
{
	struct epoll_event ev = { .events = events, .data.u64 = data };

	if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
		fail("epoll_ctl add %d errno=%d", fd, errno);
}

/* Read one u64 (eventfd value or timer expirations); -errno on failure. */
static long long read_u64(int fd)
{
	uint64_t v;
	ssize_t n = read(fd, &v, sizeof(v));

	if (n != (ssize_t)sizeof(v))
		return n < 0 ? -errno : -1000;
	return (long long)v;
}

static void report_state(void)
{
	long long c = read_u64(6), s[4], lazy = read_u64(11);

	for (int i = 0; i < 4; i++)
		s[i] = read_u64(7);
	if (c >= 0)
		report("COUNTER %llx", c);
	else
		report("COUNTER %s", c == -EAGAIN ? "EAGAIN" : "error");
	report("SEM %lld %lld %lld %s", s[0], s[1], s[2], s[3] == -EAGAIN ? "EAGAIN" : "not-empty");
	report("LAZY %lld", lazy);
	report("TICKS %llu %lld", (unsigned long long)ticks_total, (long long)((mono_ns() - ticks_armed_ns) / 1000000));
	report("STATE done");
}

static void on_signal(void)
{
	struct signalfd_siginfo si;

	while (read(8, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		report("SIGNAL %u", si.ssi_signo);
		if (si.ssi_signo == SIGUSR2)
			report_state();
	}
}

static void on_event(struct epoll_event *ev)
{
	long long v;
	char buf[256];
	ssize_t n;

	switch (ev->data.u64) {
	case D_EVFD:
		v = read_u64(5);
		if (v >= 0)
			report("EVENTFD %lld", v);
		break;
	case D_SIG:
		on_signal();
		break;
	case D_TICK:
		v = read_u64(9);
		if (v > 0)
			ticks_total += (uint64_t)v;
		break;
	case D_SOON:
		v = read_u64(13);
		if (soon_seen++)
			fail("one-shot timer fired again (%lld)", v);
		report("ONESHOT %lld", v);
		break;
	case D_PIPE:
		n = read(14, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = '\0';
			if (buf[n - 1] == '\n')
				buf[n - 1] = '\0';
			report("PIPE %s", buf);
		}
		break;
	case D_XFD:
		report("XFD %x", ev->events);
		break;
	default:
		fail("unknown epoll data %llx", (unsigned long long)ev->data.u64);
	}
}

static void child_loop(void)
{
	sigset_t usr1;
	uint64_t seven = 7;
	int sig;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	report("CHILD %d", (int)getpid());
	for (;;) {
		if (sigwait(&usr1, &sig) != 0)
			continue;
		if (write(16, &seven, sizeof(seven)) != (ssize_t)sizeof(seven))
			fail("child write xfd errno=%d", errno);
		report("CHILD wrote 7");
	}
}

int main(int argc, char **argv)
{
	int do_fork = 0, do_pipe = 0;
	uint64_t big = 0x123456789abULL;
	struct timespec now;
	sigset_t sigs;
	int pfd[2];

	report_init(argc, argv, 1, 3, "OUT [fork] [pipe]");
	for (int i = 2; i < argc; i++) {
		if (!strcmp(argv[i], "fork"))
			do_fork = 1;
		else if (!strcmp(argv[i], "pipe"))
			do_pipe = 1;
		else
			fail("bad mode '%s'", argv[i]);
	}

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGUSR1);
	sigaddset(&sigs, SIGUSR2);
	sigaddset(&sigs, SIGHUP);
	sigprocmask(SIG_BLOCK, &sigs, NULL);

	at(epoll_create1(0), 4, "epoll_create1");
	at(eventfd(0, EFD_NONBLOCK), 5, "eventfd");
	at(eventfd(0, EFD_NONBLOCK), 6, "eventfd counter");
	if (write(6, &big, sizeof(big)) != (ssize_t)sizeof(big))
		fail("write counter errno=%d", errno);
	at(eventfd(3, EFD_SEMAPHORE | EFD_NONBLOCK), 7, "eventfd semaphore");
	at(signalfd(-1, &sigs, SFD_NONBLOCK), 8, "signalfd");
	at(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 9, "timerfd tick");
	at(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 10, "timerfd long");
	at(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 11, "timerfd lazy");
	at(timerfd_create(CLOCK_REALTIME, TFD_NONBLOCK), 12, "timerfd abs");
	at(timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK), 13, "timerfd soon");
	if (do_pipe) {
		if (pipe2(pfd, O_NONBLOCK) != 0)
			fail("pipe errno=%d", errno);
		at(pfd[0], 14, "pipe read end");
		at(pfd[1], 15, "pipe write end");
	}
	if (do_fork) {
		if (!do_pipe) {
			/* keep xfd at 16: hold 14 and 15 with something */
			at(eventfd(0, 0), 14, "filler");
			at(eventfd(0, 0), 15, "filler");
		}
		at(eventfd(0, EFD_NONBLOCK), 16, "eventfd xfd");
	}

	arm(9, 0, 0, 100000000, 0, 100000000);
	ticks_armed_ns = mono_ns();
	arm(10, 0, 3600, 0, 0, 0);
	arm(11, 0, 0, 20000000, 0, 20000000);
	clock_gettime(CLOCK_REALTIME, &now);
	arm(12, TFD_TIMER_ABSTIME, now.tv_sec + 3600, now.tv_nsec, 0, 0);
	arm(13, 0, 1, 500000000, 0, 0);

	watch(4, 5, EPOLLIN, D_EVFD);
	watch(4, 8, EPOLLIN, D_SIG);
	watch(4, 9, EPOLLIN, D_TICK);
	watch(4, 13, EPOLLIN, D_SOON);
	if (do_pipe)
		watch(4, 14, EPOLLIN, D_PIPE);
	if (do_fork)
		watch(4, 16, EPOLLIN | EPOLLONESHOT, D_XFD);

	report_ready();
	if (do_fork) {
		pid_t child = fork();

		if (child < 0)
			fail("fork errno=%d", errno);
		if (child == 0)
			child_loop();
		close(16);
	}

	for (;;) {
		struct epoll_event evs[8];
		int n = epoll_wait(4, evs, 8, -1);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			fail("epoll_wait errno=%d", errno);
		}
		for (int i = 0; i < n; i++)
			on_event(&evs[i]);
	}
}
