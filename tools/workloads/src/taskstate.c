/*
 * taskstate OUT state|tstp
 *
 * Task state that only the task (or its parent) can see, reported by the
 * workload itself so a test can compare it before a dump and after a
 * restore.
 *
 * state: the parent sets its audit loginuid to 3 (/proc/self/loginuid), forks
 *   a child, registers for membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) and
 *   takes SCHED_RR|SCHED_RESET_ON_FORK at priority 3.  The child asks for
 *   SIGUSR1 when its parent dies (PR_SET_PDEATHSIG) and runs at nice 7.
 *   Each reports every 20 ms:
 *     PARENT <n> loginuid=3 policy=0x40000002 prio=3 membarrier=ok
 *     CHILD <n> loginuid=3 pdeath=10 nice=7
 *   (membarrier=EPERM when the registration is lost; the values as read.)
 *
 * tstp: the parent becomes a process group leader (start it under a shell of
 *   its own session, so the group is not orphaned and SIGTSTP stops), forks a
 *   child that sleeps, stops it with SIGTSTP and then reports every 20 ms how
 *   the child is stopped, as waitid(WSTOPPED|WNOWAIT) tells the parent:
 *     STOPPED <n> sig=20        (sig=0 while the child is not stopped)
 *   The child's pid is reported first: CHILD <pid>.
 *
 * Both write "READY <pid>" first; setup errors write "FAIL <reason>".
 */
#include "common.h"

#include <sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MEMBARRIER_CMD_PRIVATE_EXPEDITED (1 << 3)
#define MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED (1 << 4)

static void set_loginuid(unsigned int uid)
{
	char buf[16];
	int fd = open("/proc/self/loginuid", O_WRONLY);
	int n = snprintf(buf, sizeof(buf), "%u", uid);

	if (fd < 0 || write(fd, buf, (size_t)n) != n)
		fail("set loginuid %u errno=%d", uid, errno);
	close(fd);
}

static unsigned int get_loginuid(void)
{
	char buf[16] = { 0 };
	int fd = open("/proc/self/loginuid", O_RDONLY);

	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) < 0)
		fail("read loginuid errno=%d", errno);
	close(fd);
	return (unsigned int)strtoul(buf, NULL, 10);
}

static void child_state(void)
{
	unsigned long long n = 0;

	if (prctl(PR_SET_PDEATHSIG, SIGUSR1, 0, 0, 0))
		fail("PR_SET_PDEATHSIG errno=%d", errno);
	if (setpriority(PRIO_PROCESS, 0, 7))
		fail("setpriority errno=%d", errno);
	for (;;) {
		int sig = 0;

		prctl(PR_GET_PDEATHSIG, &sig, 0, 0, 0);
		errno = 0;
		int nice = getpriority(PRIO_PROCESS, 0);
		report("CHILD %llu loginuid=%u pdeath=%d nice=%d", ++n, get_loginuid(), sig, nice);
		sleep_ms(20);
	}
}

static void parent_state(void)
{
	struct sched_param sp = { .sched_priority = 3 };
	unsigned long long n = 0;

	if (syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0))
		fail("membarrier register errno=%d", errno);
	if (sched_setscheduler(0, SCHED_RR | SCHED_RESET_ON_FORK, &sp))
		fail("sched_setscheduler errno=%d", errno);
	for (;;) {
		int policy = sched_getscheduler(0);
		long mb = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);

		sched_getparam(0, &sp);
		report("PARENT %llu loginuid=%u policy=%#x prio=%d membarrier=%s", ++n, get_loginuid(), policy,
		       sp.sched_priority, mb == 0 ? "ok" : errno == EPERM ? "EPERM" : "error");
		sleep_ms(20);
	}
}

static void tstp(void)
{
	unsigned long long n = 0;
	pid_t child;

	if (setpgid(0, 0))
		fail("setpgid errno=%d", errno);
	child = fork();
	if (child < 0)
		fail("fork errno=%d", errno);
	if (child == 0)
		for (;;)
			sleep_ms(1000);
	report("CHILD %d", (int)child);
	if (kill(child, SIGTSTP))
		fail("kill SIGTSTP errno=%d", errno);
	for (;;) {
		siginfo_t si = { 0 };

		if (waitid(P_PID, (id_t)child, &si, WSTOPPED | WNOWAIT | WNOHANG))
			fail("waitid errno=%d", errno);
		report("STOPPED %llu sig=%d", ++n, si.si_pid == child ? si.si_status : 0);
		sleep_ms(20);
	}
}

int main(int argc, char **argv)
{
	report_init(argc, argv, 2, 2, "OUT state|tstp");
	report_ready();
	if (strcmp(argv[2], "tstp") == 0)
		tstp();
	if (strcmp(argv[2], "state") != 0)
		fail("unknown mode %s", argv[2]);
	set_loginuid(3);
	pid_t child = fork();
	if (child < 0)
		fail("fork errno=%d", errno);
	if (child == 0)
		child_state();
	report("CHILD %d", (int)child);
	parent_state();
	return 0;
}
