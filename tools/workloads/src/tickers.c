/*
 * tickers OUT [nthreads=4]
 *
 * A task with nthreads threads (the main one included) that mostly sleep:
 * each thread bumps its own counter every 10 ms (relative clock_nanosleep).
 * Once every thread has counted at least once the main thread writes
 * "THREADS <n>", then every 100 ms "TICK <c0> <c1> ... <cn-1>" (c0 is the
 * main thread's count).  A thread that stopped running shows as a counter
 * that no longer grows between two TICK lines.
 *
 * Self-check: each thread also keeps its count on its own stack; if the
 * stack copy and the shared one differ it writes "FAIL thread <i> copies
 * differ ...".
 */
#include "common.h"

#include <pthread.h>

#define MAX_THREADS 64

static volatile unsigned long long counts[MAX_THREADS];

static void tick(int i, volatile unsigned long long *mine)
{
	if (counts[i] != *mine)
		fail("thread %d copies differ shared=%llu stack=%llu", i, counts[i], *mine);
	(*mine)++;
	counts[i] = *mine;
}

static void *worker(void *arg)
{
	int i = (int)(intptr_t)arg;
	volatile unsigned long long mine = 0;

	for (;;) {
		tick(i, &mine);
		sleep_ms(10);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	volatile unsigned long long mine = 0;
	char line[MAX_THREADS * 24 + 16];
	int n = 4, all = 0;

	report_init(argc, argv, 1, 2, "OUT [nthreads]");
	if (argc > 2)
		n = (int)parse_num("nthreads", argv[2], 1, MAX_THREADS);
	report_ready();

	for (int i = 1; i < n; i++) {
		pthread_t t;
		int rc = pthread_create(&t, NULL, worker, (void *)(intptr_t)i);

		if (rc != 0)
			fail("pthread_create errno=%d", rc);
	}
	for (unsigned long long round = 1;; round++) {
		tick(0, &mine);
		if (!all) {
			all = 1;
			for (int i = 1; i < n; i++)
				if (counts[i] == 0)
					all = 0;
			if (all)
				report("THREADS %d", n);
		}
		if (all && round % 10 == 0) {
			size_t len = put_str(line, "TICK");

			for (int i = 0; i < n; i++) {
				line[len++] = ' ';
				len += put_dec(line + len, (long long)counts[i]);
			}
			line[len] = '\0';
			report("%s", line);
		}
		sleep_ms(10);
	}
}
