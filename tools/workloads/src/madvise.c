/*
 * madvise OUT
 *
 * Private anonymous mappings whose state is more than their bytes:
 *   dontfork  2 pages, MADV_DONTFORK, filled with a pattern
 *   droppable 2 pages, MAP_DROPPABLE, filled with a pattern (its pages may
 *             be dropped: a restore brings them back zero)
 *   guard     4 pages filled with a pattern, then MADV_GUARD_INSTALL on the
 *             middle two (a write there faults with SIGSEGV)
 * Writes
 *   MAPS dontfork=<hex> droppable=<hex> guard=<hex>
 * then every 20 ms
 *   CHECK <n> dontfork=ok droppable=data|zero guard=ok
 * where guard=ok means pages 0 and 3 still hold the pattern and writes to
 * pages 1 and 2 fault (guard=open when one does not, guard=bad when the
 * pattern is gone), dontfork=ok that its pattern is intact.
 * Setup errors write "FAIL <reason>" (MAP_DROPPABLE needs Linux 6.11, guard
 * regions Linux 6.13).
 */
#include "common.h"

#include <setjmp.h>
#include <signal.h>
#include <sys/mman.h>

#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

#define PG 4096

static sigjmp_buf jump;
static volatile sig_atomic_t armed;

static void on_segv(int sig)
{
	(void)sig;
	if (armed)
		siglongjmp(jump, 1);
	_exit(3);
}

/* 1 when a write at p faults. */
static int write_faults(volatile char *p)
{
	int faulted;

	armed = 1;
	faulted = sigsetjmp(jump, 1) != 0;
	if (!faulted)
		*p = 'x';
	armed = 0;
	return faulted;
}

static void fill(char *p, size_t len, char seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (char)(seed + (char)(i % 251));
}

/* Bytes [from, to) of p hold what fill(p, ..., seed) put there. */
static int same(const char *p, size_t from, size_t to, char seed)
{
	for (size_t i = from; i < to; i++)
		if (p[i] != (char)(seed + (char)(i % 251)))
			return 0;
	return 1;
}

static int zero(const char *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (p[i])
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_segv };
	unsigned long long n = 0;
	char *dontfork, *droppable, *guard;

	report_init(argc, argv, 1, 1, "OUT");
	report_ready();
	if (sigaction(SIGSEGV, &sa, NULL))
		fail("sigaction errno=%d", errno);

	dontfork = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	droppable = mmap(NULL, 2 * PG, PROT_READ | PROT_WRITE, MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
	guard = mmap(NULL, 4 * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (dontfork == MAP_FAILED || droppable == MAP_FAILED || guard == MAP_FAILED)
		fail("mmap errno=%d", errno);
	if (madvise(dontfork, 2 * PG, MADV_DONTFORK))
		fail("MADV_DONTFORK errno=%d", errno);
	fill(dontfork, 2 * PG, 1);
	fill(droppable, 2 * PG, 2);
	fill(guard, 4 * PG, 3);
	if (madvise(guard + PG, 2 * PG, MADV_GUARD_INSTALL))
		fail("MADV_GUARD_INSTALL errno=%d", errno);
	report("MAPS dontfork=%lx droppable=%lx guard=%lx", (unsigned long)dontfork, (unsigned long)droppable,
	       (unsigned long)guard);

	for (;;) {
		const char *g = "ok";

		if (!same(guard, 0, PG, 3) || !same(guard, 3 * PG, 4 * PG, 3))
			g = "bad";
		else if (!write_faults(guard + PG) || !write_faults(guard + 2 * PG))
			g = "open";
		report("CHECK %llu dontfork=%s droppable=%s guard=%s", ++n, same(dontfork, 0, 2 * PG, 1) ? "ok" : "bad",
		       same(droppable, 0, 2 * PG, 2) ? "data" : zero(droppable, 2 * PG) ? "zero" : "bad", g);
		sleep_ms(20);
	}
}
