/*
 * zombies OUT
 *
 * Makes five zombie children of all kinds and keeps them unreaped:
 *   - three that died by exit(0), exit(3) and by SIGKILL, one killed by SIGSEGV (a NULL write, core
 *     dumps disabled with RLIMIT_CORE 0 so the status is stable);
 *   - one in a process group whose leader is gone: a child L makes its own group (setpgid), clones
 *     a sibling Z into it with CLONE_PARENT, exits and is reaped; Z exits with 7, so the group has
 *     only a zombie left in it and no leader.
 * Once all five are zombies (state 'Z' in /proc) it writes, one line each,
 *
 *   ZOMBIE <pid> <pgid>
 *
 * then `ZOMBIES 5`, and pause()s.  On SIGUSR1 it reaps them in the order above and writes
 *
 *   REAPED <pid> <raw wait status>
 *
 * for each (a restored zombie must keep its status: 0x0, 0x300, 0x9, 0xb, 0x700), then `DONE`.
 */
#include "common.h"

#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define NZ 5

static pid_t zombies[NZ];
static volatile sig_atomic_t reap_now;

static void on_sigusr1(int sig)
{
	(void)sig;
	reap_now = 1;
}

static char proc_state(pid_t pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strrchr(buf, ')');
	if (!p || p[1] != ' ')
		return 0;
	return p[2];
}

static void wait_zombie(pid_t pid)
{
	for (int i = 0; proc_state(pid) != 'Z'; i++) {
		if (i >= 10000)
			fail("child %d never became a zombie", (int)pid);
		sleep_ms(1);
	}
}

/* L: a group of its own, a sibling Z in it (CLONE_PARENT), then L exits; returns Z's pid. */
static pid_t leaderless(int pid_pipe[2], int go_pipe[2])
{
	pid_t l = fork(), z;

	if (l < 0)
		fail("fork errno=%d", errno);
	if (l == 0) {
		if (setpgid(0, 0))
			_exit(10);
		z = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, 0, 0, 0, 0);
		if (z < 0)
			_exit(11);
		if (z == 0) {
			char c;
			/* wait until L is gone and reaped, then die too */
			if (read(go_pipe[0], &c, 1) != 1)
				_exit(12);
			_exit(7);
		}
		if (write(pid_pipe[1], &z, sizeof(z)) != sizeof(z))
			_exit(13);
		_exit(0);
	}
	int status;
	if (waitpid(l, &status, 0) != l || !WIFEXITED(status) || WEXITSTATUS(status))
		fail("leader %d status=%d", (int)l, status);
	if (read(pid_pipe[0], &z, sizeof(z)) != sizeof(z))
		fail("no pid of the sibling");
	if (write(go_pipe[1], "x", 1) != 1)
		fail("cannot release the sibling");
	return z;
}

int main(int argc, char **argv)
{
	struct rlimit nocore = { 0, 0 };
	struct sigaction sa;
	sigset_t usr1, none;
	int pid_pipe[2], go_pipe[2];

	report_init(argc, argv, 1, 1, "OUT");
	signal(SIGCHLD, SIG_DFL);
	if (setrlimit(RLIMIT_CORE, &nocore))
		fail("setrlimit errno=%d", errno);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigaction(SIGUSR1, &sa, NULL);
	sigemptyset(&none);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	if (pipe(pid_pipe) || pipe(go_pipe))
		fail("pipe errno=%d", errno);
	report_ready();

	for (int i = 0; i < 4; i++) {
		pid_t c = fork();

		if (c < 0)
			fail("fork errno=%d", errno);
		if (c == 0) {
			if (i == 0)
				_exit(0);
			if (i == 1)
				_exit(3);
			if (i == 2)
				kill(getpid(), SIGKILL);
			*(volatile int *)NULL = 0;
			_exit(13);
		}
		zombies[i] = c;
	}
	zombies[4] = leaderless(pid_pipe, go_pipe);
	close(pid_pipe[0]);
	close(pid_pipe[1]);
	close(go_pipe[0]);
	close(go_pipe[1]);
	for (int i = 0; i < NZ; i++) {
		wait_zombie(zombies[i]);
		report("ZOMBIE %d %d", (int)zombies[i], (int)getpgid(zombies[i]));
	}
	report("ZOMBIES %d", NZ);

	while (!reap_now)
		sigsuspend(&none);
	for (int i = 0; i < NZ; i++) {
		int status;

		if (waitpid(zombies[i], &status, 0) != zombies[i])
			fail("waitpid %d errno=%d", (int)zombies[i], errno);
		report("REAPED %d 0x%x", (int)zombies[i], status);
	}
	report("DONE");
	for (;;)
		pause();
}
