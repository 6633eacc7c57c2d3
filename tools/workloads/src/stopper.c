/*
 * stopper OUT
 *
 * Writes "READY <pid>", then raise(SIGSTOP) - the process sits in the
 * stopped state (T) until a SIGCONT.  Then:
 *
 *   CONTINUED        right after it runs again
 *   ALIVE <n>        n = 1, 2, 3, ... every 20 ms afterwards
 *
 * Self-check: n is kept in a .bss variable and a stack copy that must stay
 * equal ("FAIL alive copies differ ...").  Later SIGSTOP/SIGCONT pairs just
 * pause the ALIVE stream.
 */
#include "common.h"

#include <signal.h>

static volatile unsigned long long alive;

int main(int argc, char **argv)
{
	volatile unsigned long long copy = 0;

	report_init(argc, argv, 1, 1, "OUT");
	report_ready();

	if (raise(SIGSTOP) != 0)
		fail("raise errno=%d", errno);
	report("CONTINUED");

	for (;;) {
		if (alive != copy)
			fail("alive copies differ bss=%llu stack=%llu", alive, copy);
		alive++;
		copy++;
		report("ALIVE %llu", alive);
		sleep_ms(20);
	}
}
