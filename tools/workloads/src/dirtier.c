/*
 * dirtier OUT MIB [mode=loop] [percent=1]
 *
 * Memory that changes while it is checkpointed, for incremental dumps (pre-dump, --track-mem).
 * mmap()s MIB MiB of private anonymous memory ("the area") and a table with one 64-bit generation
 * number per page of it ("the gens"). Page i always holds, as 512 64-bit words,
 *
 *   w[0] = i, w[1] = gens[i], w[k] = mix(i, gens[i], k) for k >= 2
 *
 * (mix: see page_word; tests compute it too). It fills every page (generation 1), writes
 *
 *   READY <pid>
 *   AREA <area hex> <pages> <gens hex>
 *
 * and then, by mode:
 *   loop   rewrites pages without pause, in a pseudo-random order (gens[i]++ then the page), for ever;
 *   burst  waits; each SIGUSR2 rewrites PERCENT % of the pages (distinct ones, a random stride) and writes
 *          "BURST <count>".
 * SIGUSR1 (both modes) checks every page against its generation between two writes and writes
 * "CHECK OK <sum of gens>" (or "FAIL page <i> ..." and exit 1). SIGHUP (loop mode) makes changes
 * incremental dumps must follow: the last 1/8 of the area is unmapped and mapped again (a new VMA,
 * rewritten at the next generation), a new 1 MiB region is mapped and written ("EXTRA <hex>"), and the
 * process forks a child that goes on writing its copy too ("CHILD <pid>"); each checks itself on
 * SIGUSR1.
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>

#define PAGE 4096UL
#define WORDS (PAGE / 8)

static uint64_t *area;
static uint64_t *gens;
static size_t npages;
static volatile sig_atomic_t want_check, want_burst, want_change;

static inline uint64_t page_word(uint64_t i, uint64_t gen, uint64_t k)
{
	uint64_t x = (i * 0x9e3779b97f4a7c15ULL) ^ (gen * 0xc2b2ae3d27d4eb4fULL) ^ (k * 0x165667b19e3779f9ULL);
	x ^= x >> 29;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 32;
	return x;
}

static void write_page(size_t i)
{
	uint64_t *p = area + i * WORDS, g = gens[i];

	p[0] = i;
	p[1] = g;
	for (uint64_t k = 2; k < WORDS; k++)
		p[k] = page_word(i, g, k);
}

static void check_all(void)
{
	uint64_t sum = 0;
	char line[128];
	size_t n = 0;

	for (size_t i = 0; i < npages; i++) {
		const uint64_t *p = area + i * WORDS;
		uint64_t g = gens[i];
		int bad = p[0] != i || p[1] != g;

		for (uint64_t k = 2; !bad && k < WORDS; k++)
			bad = p[k] != page_word(i, g, k);
		if (bad)
			fail("page %zu: gen %llu in the table, page says index %llu gen %llu", i,
			     (unsigned long long)g, (unsigned long long)p[0], (unsigned long long)p[1]);
		sum += g;
	}
	n += put_str(line + n, "CHECK OK ");
	n += put_dec(line + n, (long long)sum);
	report_raw(line, n);
}

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		want_check = 1;
	else if (sig == SIGUSR2)
		want_burst = 1;
	else
		want_change = 1;
}

static uint64_t rnd = 88172645463325252ULL;
static inline uint64_t next_rnd(void)
{
	rnd ^= rnd << 13;
	rnd ^= rnd >> 7;
	rnd ^= rnd << 17;
	return rnd;
}

static void burst(long percent)
{
	size_t count = npages * (size_t)percent / 100, stride, at;

	if (count == 0)
		count = 1;
	/* an odd stride visits distinct pages when npages is a power of two; else near enough */
	stride = (size_t)(next_rnd() % npages) | 1;
	at = (size_t)(next_rnd() % npages);
	for (size_t n = 0; n < count; n++) {
		gens[at]++;
		write_page(at);
		at = (at + stride) % npages;
	}
	report("BURST %zu", count);
}

static void change(void)
{
	size_t tail = npages / 8, from = npages - tail;
	uint64_t *extra;
	pid_t child;

	if (tail) {
		void *at = area + from * WORDS;
		if (munmap(at, tail * PAGE) != 0)
			fail("munmap errno=%d", errno);
		if (mmap(at, tail * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) != at)
			fail("mmap fixed errno=%d", errno);
		for (size_t i = from; i < npages; i++) {
			gens[i]++;
			write_page(i);
		}
	}
	extra = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (extra == MAP_FAILED)
		fail("mmap extra errno=%d", errno);
	for (size_t k = 0; k < (1 << 20) / 8; k++)
		extra[k] = k * 7 + 1;
	report("EXTRA %lx", (unsigned long)extra);
	child = fork();
	if (child < 0)
		fail("fork errno=%d", errno);
	if (child > 0)
		report("CHILD %d", child);
	else
		rnd ^= (uint64_t)getpid() << 20;
}

int main(int argc, char **argv)
{
	long mib, percent = 1;
	int loop = 1;
	struct sigaction sa;

	report_init(argc, argv, 2, 5, "dirtier OUT MIB [loop|burst] [percent]");
	mib = parse_num("MIB", argv[2], 1, 1 << 20);
	if (argc > 3) {
		if (strcmp(argv[3], "burst") == 0)
			loop = 0;
		else if (strcmp(argv[3], "loop") != 0)
			fail("bad mode %s", argv[3]);
	}
	if (argc > 4)
		percent = parse_num("percent", argv[4], 0, 100);
	npages = (size_t)mib * (1 << 20) / PAGE;
	area = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	gens = mmap(NULL, (npages * 8 + PAGE - 1) & ~(PAGE - 1), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED || gens == MAP_FAILED)
		fail("mmap errno=%d", errno);
	for (size_t i = 0; i < npages; i++) {
		gens[i] = 1;
		write_page(i);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGUSR2, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	{
		/* whatever mask it was started with; burst mode sleeps in sigsuspend, where signals only
		 * arrive, so none is missed */
		sigset_t set;
		sigemptyset(&set);
		sigaddset(&set, SIGUSR1);
		sigaddset(&set, SIGUSR2);
		sigaddset(&set, SIGHUP);
		sigprocmask(loop ? SIG_UNBLOCK : SIG_BLOCK, &set, NULL);
	}
	report_ready();
	report("AREA %lx %zu %lx", (unsigned long)area, npages, (unsigned long)gens);
	for (;;) {
		if (want_check) {
			want_check = 0;
			check_all();
		}
		if (want_change) {
			want_change = 0;
			change();
		}
		if (loop) {
			size_t i = (size_t)(next_rnd() % npages);
			gens[i]++;
			write_page(i);
		} else {
			if (want_burst) {
				want_burst = 0;
				burst(percent);
			}
			if (!want_check && !want_burst && !want_change) {
				sigset_t none;
				sigemptyset(&none);
				sigsuspend(&none);
			}
		}
	}
}
