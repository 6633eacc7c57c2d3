/*
 * memhog OUT MIB [seed=1]
 *
 * mmap()s MIB MiB of private anonymous memory, fills every byte of it
 * with a deterministic xorshift64 stream seeded from seed, and writes
 *
 *   READY <pid>
 *   SUM <16 hex digits>     64-bit checksum of the whole area
 *
 * then pause()s.  On every SIGUSR1 it recomputes the checksum over the
 * memory and writes "SUM <hex>" again, so a test can compare the sums
 * from before and after a checkpoint/restore.  Self-check: a recomputed
 * sum that differs from the first one writes "FAIL checksum mismatch
 * <now> != <first>" and exits 1.  The checksum depends only on MIB and
 * seed, so two runs with the same parameters print the same SUM.
 *
 * (SIGUSR1 stays blocked until the first SUM is written, and the
 * recomputation runs inside the handler - pure reads plus one write() -
 * so plain pause() has no missed-wakeup race.)
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>

static uint64_t *area;
static size_t nwords;
static uint64_t first_sum;

/* Checksum: FNV-1a-style mix over 64-bit words plus a position-weighted
 * term, so swapped or zeroed pages change the result. */
static uint64_t checksum(void)
{
	uint64_t h = 0xcbf29ce484222325ULL, s = 0;

	for (size_t i = 0; i < nwords; i++) {
		h = (h ^ area[i]) * 0x100000001b3ULL;
		s += area[i] * (2 * (uint64_t)i + 1);
	}
	return h ^ (s * 0x9e3779b97f4a7c15ULL);
}

static void on_sigusr1(int sig)
{
	int saved = errno;
	uint64_t sum = checksum();
	char line[96];
	size_t n = 0;

	(void)sig;
	if (sum != first_sum) {
		n += put_str(line + n, "FAIL checksum mismatch ");
		n += put_hex64(line + n, sum);
		n += put_str(line + n, " != ");
		n += put_hex64(line + n, first_sum);
		report_raw(line, n);
		_exit(1);
	}
	n += put_str(line + n, "SUM ");
	n += put_hex64(line + n, sum);
	report_raw(line, n);
	errno = saved;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	sigset_t usr1;
	uint64_t x;
	long long mib;

	report_init(argc, argv, 2, 3, "OUT MIB [seed]");
	mib = parse_num("MIB", argv[2], 1, 1 << 20);
	x = argc > 3 ? (uint64_t)parse_num("seed", argv[3], 0, INT64_MAX) : 1;
	x = x * 0x9e3779b97f4a7c15ULL + 0x2545f4914f6cdd1dULL; /* never 0 */
	if (x == 0)
		x = 1;

	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);

	report_ready();

	nwords = (size_t)mib * 1024 * 1024 / sizeof(uint64_t);
	area = mmap(NULL, nwords * sizeof(uint64_t), PROT_READ | PROT_WRITE,
		    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		fail("mmap %lld MiB errno=%d", mib, errno);

	for (size_t i = 0; i < nwords; i++) { /* xorshift64 */
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		area[i] = x;
	}

	first_sum = checksum();
	report("SUM %016llx", (unsigned long long)first_sum);

	sigprocmask(SIG_UNBLOCK, &usr1, NULL);
	for (;;)
		pause();
}
