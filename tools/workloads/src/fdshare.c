/*
 * fdshare OUT
 *
 * A process and a child made with clone(CLONE_FILES): one fd table for both.
 * Before READY the parent opens a pipe (fds 4 and 5) and the child a second
 * one (fds 6 and 7), each seen by the other.  A third task, forked by the
 * child without CLONE_FILES, has its own copy of the table.
 *
 *   "CHILD <pid> <grandchild pid>"   after READY
 *
 * On SIGUSR1 the child opens /dev/null at fd 40 and writes "OPENED"; then on
 * SIGUSR2 the parent checks that fd 40 is there (its table is the child's),
 * writes a byte into the child's pipe, the child reads it and writes "GOT
 * <byte>".  The grandchild, on SIGUSR1, reports "GRAND 40 <open|closed>"
 * (its own table must not have fd 40).
 */
#include "common.h"

#include <sched.h>
#include <signal.h>
#include <sys/wait.h>

static int wait_sig(int sig)
{
	sigset_t set;
	int got = 0;

	sigemptyset(&set);
	sigaddset(&set, sig);
	if (sigwait(&set, &got) != 0)
		fail("sigwait errno=%d", errno);
	return got;
}

static __attribute__((noreturn)) void grandchild(void)
{
	wait_sig(SIGUSR1);
	report("GRAND 40 %s", fcntl(40, F_GETFD) < 0 ? "closed" : "open");
	for (;;)
		sleep_ms(1000);
}

static char stack[64 * 1024] __attribute__((aligned(16)));

static int child(void *arg)
{
	int p[2];
	pid_t g;
	char c;

	(void)arg;
	if (pipe(p) != 0 || p[0] != 6 || p[1] != 7)
		fail("child pipe %d %d errno=%d", p[0], p[1], errno);
	g = fork();
	if (g < 0)
		fail("fork errno=%d", errno);
	if (g == 0)
		grandchild();
	report("CHILD %d %d", (int)getpid(), (int)g);
	wait_sig(SIGUSR1);
	if (dup2(open("/dev/null", O_RDONLY), 40) != 40)
		fail("dup2 40 errno=%d", errno);
	report("OPENED");
	if (read(6, &c, 1) != 1)
		fail("read errno=%d", errno);
	report("GOT %c", c);
	for (;;)
		sleep_ms(1000);
	return 0;
}

int main(int argc, char **argv)
{
	int p[2];
	sigset_t set;
	pid_t c;

	report_init(argc, argv, 1, 1, "OUT");
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigaddset(&set, SIGUSR2);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (pipe(p) != 0 || p[0] != 4 || p[1] != 5)
		fail("pipe %d %d errno=%d", p[0], p[1], errno);
	report_ready();
	c = clone(child, stack + sizeof(stack), CLONE_FILES | SIGCHLD, NULL);
	if (c < 0)
		fail("clone errno=%d", errno);
	wait_sig(SIGUSR2);
	if (fcntl(40, F_GETFD) < 0)
		fail("fd 40 is not in the parent's table");
	if (write(7, "x", 1) != 1)
		fail("write errno=%d", errno);
	for (;;)
		sleep_ms(1000);
}
