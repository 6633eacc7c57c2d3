/*
 * sigio OUT LOG
 *
 * Files with owners for SIGIO (fcntl F_SETOWN_EX / F_SETSIG), each a different kind of owner:
 *
 *   fd 4, 5   a pipe; the read end (4) is O_ASYNC|O_NONBLOCK, owned by this process (F_OWNER_PID)
 *             with F_SETSIG 40: data written to the pipe (by anyone, e.g. through /proc/PID/fd/5)
 *             sends signal 40 with si_fd = 4;
 *   fd 6, 7   a unix stream socketpair; 6 is O_ASYNC|O_NONBLOCK, owned by this process's group
 *             (F_OWNER_PGRP) with the default signal (SIGIO); on SIGUSR1 the program writes "ping"
 *             to 7 itself;
 *   fd 8      LOG, opened O_WRONLY|O_APPEND|O_CREAT (a log: one line per event), owned by the main
 *             thread (F_OWNER_TID) with F_SETSIG 41, the owner set while the thread's uid and euid
 *             were 65534 (so fcntl(F_GETOWNER_UIDS) says 65534 65534), then back to root.
 *
 * Writes "OWNERS pipe=<pid> sock=-<pgrp> log=<tid>" and READY, then waits for signals (all blocked,
 * sigtimedwait) and reports each:
 *
 *   SIG 40 fd=4 <data>      what arrived in the pipe
 *   SIG 29 <data>           what arrived on the socket (29 = SIGIO)
 *
 * and appends the same line to LOG. FAIL if a signal comes with nothing to read, or for an
 * unexpected si_fd. Needs to start as root (uid 0).
 */
#include "common.h"

#include <signal.h>
#include <sys/socket.h>

#define PIPE_SIG 40
#define LOG_SIG 41

static void log_line(int fd, const char *line)
{
	char buf[512];
	size_t n = strlen(line);

	if (n > sizeof(buf) - 1)
		n = sizeof(buf) - 1;
	memcpy(buf, line, n);
	buf[n++] = '\n';
	if (write(fd, buf, n) != (ssize_t)n)
		fail("write log errno=%d", errno);
}

static void own(int fd, int type, pid_t pid, int sig)
{
	struct f_owner_ex ex = { .type = type, .pid = pid };

	if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC | O_NONBLOCK) < 0)
		fail("F_SETFL fd %d errno=%d", fd, errno);
	if (fcntl(fd, F_SETOWN_EX, &ex) < 0)
		fail("F_SETOWN_EX fd %d errno=%d", fd, errno);
	if (sig && fcntl(fd, F_SETSIG, sig) < 0)
		fail("F_SETSIG fd %d errno=%d", fd, errno);
}

/* Read what is there (non-blocking); the text, or fail if nothing. */
static void drain(int fd, char *out, size_t size)
{
	ssize_t n = read(fd, out, size - 1);

	if (n <= 0)
		fail("signal for fd %d but read gives %zd errno=%d", fd, n, errno);
	out[n] = '\0';
	while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\0'))
		out[--n] = '\0';
}

int main(int argc, char **argv)
{
	int p[2], sk[2], logfd;
	struct f_owner_ex ex = { .type = F_OWNER_TID };
	sigset_t set;

	report_init(argc, argv, 2, 2, "OUT LOG");
	if (pipe2(p, 0) < 0 || p[0] != 4 || p[1] != 5)
		fail("pipe at 4, 5 errno=%d", errno);
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sk) < 0 || sk[0] != 6 || sk[1] != 7)
		fail("socketpair at 6, 7 errno=%d", errno);
	logfd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT, 0644);
	if (logfd != 8)
		fail("open %s at 8 errno=%d", argv[2], errno);

	sigemptyset(&set);
	sigaddset(&set, PIPE_SIG);
	sigaddset(&set, SIGIO);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);

	own(4, F_OWNER_PID, getpid(), PIPE_SIG);
	own(6, F_OWNER_PGRP, getpgrp(), 0);
	/* The log's owner, set as uid 65534 (the saved uid stays 0 to come back). */
	if (setresuid(65534, 65534, 0) < 0)
		fail("setresuid 65534 errno=%d", errno);
	ex.pid = gettid();
	if (fcntl(8, F_SETOWN_EX, &ex) < 0 || fcntl(8, F_SETSIG, LOG_SIG) < 0)
		fail("owner of the log errno=%d", errno);
	if (setresuid(0, 0, 0) < 0)
		fail("setresuid 0 errno=%d", errno);

	report("OWNERS pipe=%d sock=-%d log=%d", (int)getpid(), (int)getpgrp(), (int)gettid());
	log_line(logfd, "START");
	report_ready();

	for (;;) {
		struct timespec tmo = { 1, 0 };
		char data[256], line[400];
		siginfo_t si;
		int sig = sigtimedwait(&set, &si, &tmo);

		if (sig < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			fail("sigtimedwait errno=%d", errno);
		}
		if (sig == SIGUSR1) {
			if (write(7, "ping", 4) != 4)
				fail("write socket errno=%d", errno);
			continue;
		}
		if (sig == PIPE_SIG) {
			if (si.si_fd != 4)
				fail("signal %d with si_fd %d", sig, si.si_fd);
			drain(4, data, sizeof(data));
			snprintf(line, sizeof(line), "SIG %d fd=%d %s", sig, si.si_fd, data);
		} else {
			drain(6, data, sizeof(data));
			snprintf(line, sizeof(line), "SIG %d %s", sig, data);
		}
		log_line(logfd, line);
		report("%s", line);
	}
}
