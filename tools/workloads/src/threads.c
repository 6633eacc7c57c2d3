/*
 * threads OUT [nthreads=8]
 *
 * Starts nthreads worker threads.  Each worker loops forever: create a
 * short-lived child thread, join it, bump its own counter.  So at any
 * moment threads are being born and dying, which is exactly what a
 * checkpoint has to freeze consistently.
 *
 * The main thread writes "TICK <sum of all worker counters>" every 50 ms.
 *
 * Self-checks:
 *   - every worker counter only grows (main remembers the last value it
 *     saw per worker): "FAIL counter of worker I went back A -> B";
 *   - the child thread really ran, on its own stack, with the argument it
 *     was given (it returns a value derived from it): "FAIL child ...";
 *   - pthread_create/pthread_join errors: "FAIL pthread_create ...".
 */
#include "common.h"

#include <pthread.h>
#include <stdatomic.h>

#define MAX_THREADS 256

struct worker {
	_Atomic unsigned long long count; /* bumped once per child joined */
	int index;
	char pad[64]; /* keep workers on separate cache lines */
};

static struct worker workers[MAX_THREADS];

/* The short-lived child: proves it ran by transforming its argument. */
static void *child_main(void *arg)
{
	unsigned long long v = *(unsigned long long *)arg;
	volatile unsigned long long on_stack = v * 3 + 1; /* touch own stack */

	*(unsigned long long *)arg = on_stack;
	return arg;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;

	for (;;) {
		unsigned long long before = atomic_load(&w->count);
		unsigned long long token = before ^ ((unsigned long long)w->index << 40);
		unsigned long long expect = token * 3 + 1;
		pthread_t child;
		void *ret;
		int rc;

		rc = pthread_create(&child, NULL, child_main, &token);
		if (rc != 0)
			fail("pthread_create in worker %d errno=%d", w->index, rc);
		rc = pthread_join(child, &ret);
		if (rc != 0)
			fail("pthread_join in worker %d errno=%d", w->index, rc);
		if (ret != &token || token != expect)
			fail("child of worker %d returned %llx, expected %llx", w->index, token, expect);
		/* Only this thread writes its counter; check nobody else did. */
		if (atomic_load(&w->count) != before)
			fail("counter of worker %d changed under it", w->index);
		atomic_store(&w->count, before + 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long long last[MAX_THREADS] = { 0 };
	int n = 8;

	report_init(argc, argv, 1, 2, "OUT [nthreads=8]");
	if (argc > 2)
		n = (int)parse_num("nthreads", argv[2], 1, MAX_THREADS);

	for (int i = 0; i < n; i++) {
		pthread_t t;
		int rc;

		workers[i].index = i;
		rc = pthread_create(&t, NULL, worker_main, &workers[i]);
		if (rc != 0)
			fail("pthread_create worker %d errno=%d", i, rc);
		pthread_detach(t);
	}

	report_ready();
	for (;;) {
		unsigned long long sum = 0;

		sleep_ms(50);
		for (int i = 0; i < n; i++) {
			unsigned long long c = atomic_load(&workers[i].count);

			if (c < last[i])
				fail("counter of worker %d went back %llu -> %llu", i, last[i], c);
			last[i] = c;
			sum += c;
		}
		report("TICK %llu", sum);
	}
}
