/*
 * shared_files OUT
 *
 * Clones a child with CLONE_FILES (parent and child share one fd table, as
 * threads do, but are two processes), writes "READY <child pid>", and both
 * wait in pause() forever. criu-ts cannot restore a shared fd table yet:
 * its dump must refuse this tree and leave both running.
 */
#include "common.h"

#include <sched.h>
#include <signal.h>

static char child_stack[64 * 1024];

static int child(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return 0;
}

int main(int argc, char **argv)
{
	pid_t pid;

	report_init(argc, argv, 1, 1, "OUT");
	pid = clone(child, child_stack + sizeof(child_stack), CLONE_FILES | SIGCHLD, NULL);
	if (pid < 0)
		fail("clone: %s", strerror(errno));
	report("READY %d", (int)pid);
	for (;;)
		pause();
}
