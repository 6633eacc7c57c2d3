/*
 * seccomp_tsync OUT
 *
 * A two-thread task under a seccomp filter it cannot install again by
 * itself: the filter (getppid fails with errno 77) is installed while root
 * and without no_new_privs, then a second thread is created (it inherits
 * the filter) and both drop to uid 65534.  Writes "READY <pid>", then
 *   THREAD <tid>
 *   TICK <n> getppid=<errno>       every 20 ms (77 while the filter holds)
 * On SIGUSR1 the main thread sets no_new_privs and installs a second filter
 * (getpgid fails with errno 78) with SECCOMP_FILTER_FLAG_TSYNC, which works
 * only while both threads share the first one:
 *   TSYNC <result>                 (0; a tid when a thread could not sync)
 * and the other thread then reports what its getpgid gives:
 *   THREAD getpgid=<errno>         (78 when the filter reached it)
 */
#include "common.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

static volatile sig_atomic_t go;
static volatile int installed;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static long install(int nr, int err, unsigned int flags)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD + BPF_W + BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP + BPF_JEQ + BPF_K, (unsigned int)nr, 0, 1),
		BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_ERRNO | (unsigned int)err),
		BPF_STMT(BPF_RET + BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(f) / sizeof(f[0]), .filter = f };

	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

/* errno of a syscall without arguments, 0 when it worked. */
static int errno_of(long nr, long arg)
{
	errno = 0;
	return syscall(nr, arg) < 0 ? errno : 0;
}

static void *thread(void *arg)
{
	(void)arg;
	report("THREAD %ld", (long)syscall(SYS_gettid));
	while (!installed)
		sleep_ms(5);
	report("THREAD getpgid=%d", errno_of(SYS_getpgid, 0));
	for (;;)
		sleep_ms(1000);
	return NULL;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	unsigned long long n = 0;
	pthread_t th;

	report_init(argc, argv, 1, 1, "OUT");
	report_ready();
	if (sigaction(SIGUSR1, &sa, NULL))
		fail("sigaction errno=%d", errno);
	if (install(SYS_getppid, 77, 0))
		fail("seccomp errno=%d", errno);
	if (pthread_create(&th, NULL, thread, NULL))
		fail("pthread_create");
	/* glibc changes the ids of every thread */
	if (setresgid(65534, 65534, 65534) || setresuid(65534, 65534, 65534))
		fail("setresuid errno=%d", errno);
	for (;;) {
		if (go == 1) {
			go = 2;
			if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
				fail("PR_SET_NO_NEW_PRIVS errno=%d", errno);
			long r = install(SYS_getpgid, 78, SECCOMP_FILTER_FLAG_TSYNC);
			report("TSYNC %ld", r < 0 ? -errno : r);
			installed = 1;
		}
		report("TICK %llu getppid=%d", ++n, errno_of(SYS_getppid, 0));
		sleep_ms(20);
	}
}
