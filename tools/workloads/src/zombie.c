/*
 * zombie OUT
 *
 * Forks a child that exits at once with status 42.  The parent does not
 * reap it; it polls /proc/<child>/stat until the state is 'Z' (gives up
 * after 10 s with "FAIL child ... never became a zombie"), then writes
 *
 *   ZOMBIE <childpid>
 *
 * and pause()s forever, so the zombie exists for as long as the parent.
 *
 * Optional check: on SIGUSR1 the parent reaps the child and writes
 *   REAPED <childpid> <exit code>     (the code must be 42, else FAIL)
 * so a test can verify that a restored zombie kept its exit code.
 * Further SIGUSR1s are ignored.  (The reaping is done inside the signal
 * handler with async-signal-safe calls, so main can use plain pause().)
 */
#include "common.h"

#include <signal.h>
#include <sys/wait.h>

#define CHILD_EXIT 42

static volatile pid_t zombie_pid;
static volatile sig_atomic_t reaped;

static void on_sigusr1(int sig)
{
	int saved = errno, status;
	char line[96];
	size_t n = 0;
	pid_t r;

	(void)sig;
	if (reaped || zombie_pid <= 0)
		return;
	reaped = 1;
	while ((r = waitpid(zombie_pid, &status, WNOHANG)) < 0 && errno == EINTR)
		;
	if (r == zombie_pid && WIFEXITED(status) && WEXITSTATUS(status) == CHILD_EXIT) {
		n += put_str(line + n, "REAPED ");
		n += put_dec(line + n, r);
		n += put_str(line + n, " ");
		n += put_dec(line + n, WEXITSTATUS(status));
		report_raw(line, n);
		errno = saved;
		return;
	}
	n += put_str(line + n, "FAIL reaping zombie ");
	n += put_dec(line + n, zombie_pid);
	n += put_str(line + n, ": waitpid=");
	n += put_dec(line + n, r);
	n += put_str(line + n, r < 0 ? " errno=" : " status=");
	n += put_dec(line + n, r < 0 ? errno : status);
	report_raw(line, n);
	_exit(1);
}

/* Process state letter from /proc/<pid>/stat, or 0 if unreadable. */
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
	p = strrchr(buf, ')'); /* comm may contain spaces and parens */
	if (!p || p[1] != ' ')
		return 0;
	return p[2];
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t usr1;
	pid_t child;

	report_init(argc, argv, 1, 1, "OUT");

	/* SIGCHLD must not be SIG_IGN (inherited), or the child is auto-reaped. */
	signal(SIGCHLD, SIG_DFL);

	/* SIGUSR1 stays blocked until the zombie is confirmed and reported. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	report_ready();

	child = fork();
	if (child < 0)
		fail("fork errno=%d", errno);
	if (child == 0)
		_exit(CHILD_EXIT);

	for (int i = 0;; i++) {
		char st = proc_state(child);

		if (st == 'Z')
			break;
		if (i >= 10000)
			fail("child %d never became a zombie (state '%c')", (int)child, st ? st : '?');
		sleep_ms(1);
	}
	zombie_pid = child;
	report("ZOMBIE %d", (int)child);

	sigprocmask(SIG_UNBLOCK, &usr1, NULL);
	for (;;)
		pause();
}
