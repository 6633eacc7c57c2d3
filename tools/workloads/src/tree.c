/*
 * tree OUT
 *
 * Becomes a session leader (setsid(); if it already is one, e.g. spawned
 * with Node's detached: true, that is kept) and builds this tree of 5 tasks:
 *
 *   root (session + process-group leader)
 *    +- A          leaf
 *    +- B
 *        +- C      leaf, in root's process group
 *        +- D      leaf, in its own process group (setpgid(0, 0))
 *
 * Report lines:
 *   READY <rootpid>                 written first, by the root
 *   TASK <pid> <ppid> <pgid> <sid>  once per task (5 lines, any order),
 *                                   written after the task's ids are final
 *   TREE <rootpid>                  by the root, once all 5 TASK lines are in
 *                                   the file AND the 4 descendants are asleep
 *                                   in pause() (seen in /proc/<pid>/syscall);
 *                                   no task then holds any fd besides the
 *                                   report (and whatever stdio it was given).
 * Then every task sits in pause() forever (the root enters it right after
 * writing TREE).  A task whose child dies
 * writes "FAIL child died pid=<pid> status=<raw wait status>" and exits 1
 * (stops are not reported: SIGCHLD uses SA_NOCLDSTOP and waitpid does not
 * ask for WUNTRACED).
 *
 * If the root is a process-group leader but not a session leader (e.g. a
 * job-control shell started it), setsid() is impossible: it writes
 * "FAIL setsid errno=1" and exits.
 */
#include "common.h"

#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>

/*
 * SIGCHLD: if a child terminated, report it and exit.  Done right in the
 * handler (write() and _exit() only) so that plain pause() can be used
 * without a check-then-pause race.
 */
static void on_sigchld(int sig)
{
	int saved = errno, status;
	pid_t pid;

	(void)sig;
	/* Only terminated children (no WUNTRACED/WCONTINUED). */
	pid = waitpid(-1, &status, WNOHANG);
	if (pid > 0) {
		char line[96];
		size_t n = 0;

		n += put_str(line + n, "FAIL child died pid=");
		n += put_dec(line + n, pid);
		n += put_str(line + n, " status=");
		n += put_dec(line + n, status);
		report_raw(line, n);
		_exit(1);
	}
	errno = saved;
}

/* Every task ends here. */
static void __attribute__((noreturn)) idle_forever(void)
{
	for (;;)
		pause();
}

static void report_task(void)
{
	report("TASK %d %d %d %d", (int)getpid(), (int)getppid(), (int)getpgid(0), (int)getsid(0));
}

/* Tell the root "my TASK line is written" (by sending my pid; a 4-byte
 * pipe write is atomic) and drop the sync pipe. */
static void done_sync(int wfd)
{
	int32_t me = (int32_t)getpid();

	if (write(wfd, &me, sizeof(me)) != (ssize_t)sizeof(me))
		fail("sync write errno=%d", errno);
	close(wfd);
}

/* Is task pid blocked in pause()?  (First field of /proc/<pid>/syscall.) */
static int in_pause(pid_t pid)
{
	char path[64], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	return atol(buf) == SYS_pause && buf[0] != '-';
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	int sync_pipe[2];
	pid_t root = getpid();

	report_init(argc, argv, 1, 1, "OUT");

	/* Make sure a dying child is noticed (and not auto-reaped if SIGCHLD
	 * was inherited as SIG_IGN). */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigchld;
	sa.sa_flags = SA_NOCLDSTOP | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGCHLD, &sa, NULL) < 0)
		fail("sigaction errno=%d", errno);

	if (getsid(0) != root && setsid() < 0)
		fail("setsid errno=%d", errno);
	report_ready();

	/* Every task except the root writes its pid here once its TASK line
	 * is written; the root reads until EOF (all write ends closed). */
	if (pipe2(sync_pipe, O_CLOEXEC) < 0)
		fail("pipe errno=%d", errno);

	pid_t a = fork();
	if (a < 0)
		fail("fork A errno=%d", errno);
	if (a == 0) {
		close(sync_pipe[0]);
		report_task();
		done_sync(sync_pipe[1]);
		idle_forever();
	}

	pid_t b = fork();
	if (b < 0)
		fail("fork B errno=%d", errno);
	if (b == 0) {
		close(sync_pipe[0]);
		report_task();

		pid_t c = fork();
		if (c < 0)
			fail("fork C errno=%d", errno);
		if (c == 0) {
			report_task();
			done_sync(sync_pipe[1]);
			idle_forever();
		}

		pid_t d = fork();
		if (d < 0)
			fail("fork D errno=%d", errno);
		if (d == 0) {
			if (setpgid(0, 0) < 0)
				fail("setpgid errno=%d", errno);
			report_task();
			done_sync(sync_pipe[1]);
			idle_forever();
		}
		/* Also from the parent side, the classic race-free idiom. */
		if (setpgid(d, d) < 0 && errno != EACCES)
			fail("setpgid(D) errno=%d", errno);

		done_sync(sync_pipe[1]);
		idle_forever();
	}

	/* Root. */
	close(sync_pipe[1]);
	report_task();
	{
		int32_t pids[5];
		size_t got = 0;
		ssize_t r;

		while ((r = read(sync_pipe[0], (char *)pids + got, sizeof(pids) - got)) != 0) {
			if (r < 0) {
				if (errno == EINTR)
					continue;
				fail("sync read errno=%d", errno);
			}
			got += (size_t)r;
			if (got == sizeof(pids))
				break;
		}
		close(sync_pipe[0]);
		if (got != 4 * sizeof(int32_t))
			fail("%zu bytes from descendants, expected %zu", got, 4 * sizeof(int32_t));

		/* Make TREE mean "everyone is asleep": wait (up to 10 s) until
		 * each descendant is blocked in pause(). */
		for (int i = 0; i < 4; i++) {
			for (int tries = 0; !in_pause(pids[i]); tries++) {
				if (tries >= 10000)
					fail("task %d never reached pause()", (int)pids[i]);
				sleep_ms(1);
			}
		}
	}
	report("TREE %d", (int)root);
	idle_forever();
}
