/*
 * hugetlb OUT private|shared|memfd|fork|sysv
 *
 * 4 MiB of hugetlb memory (2 MiB pages; the machine must have free huge
 * pages: /proc/sys/vm/nr_hugepages), filled with a pattern:
 *   private  anonymous MAP_PRIVATE|MAP_HUGETLB memory;
 *   shared   anonymous MAP_SHARED|MAP_HUGETLB memory;
 *   memfd    a memfd "criu-ts-huge" made with MFD_HUGETLB|MFD_ALLOW_SEALING,
 *            sealed F_SEAL_SHRINK|F_SEAL_GROW, its fd kept open (reported
 *            "FD <n>"), mapped shared (the pattern) and private (its first
 *            page rewritten with 0x5a: a copy of the private mapping's own;
 *            reported "PRIVATE <hex address>");
 *   fork     anonymous MAP_SHARED|MAP_HUGETLB memory shared with a child
 *            ("CHILD <pid>"): the child copies the first word to the second
 *            one, all the time; each check the parent stores a new number in
 *            the first and waits (at most 5 s) for it in the second. The
 *            pattern starts at the second 4 KiB page.
 *   sysv     a SysV segment made with SHM_HUGETLB, attached and removed
 *            (IPC_RMID) at once so that it goes with the task.
 * Writes "READY <pid>", "MAP <hex address>", then every 20 ms
 *   CHECK <n> ok                 (or "CHECK <n> bad <what>")
 * Setup errors write "FAIL <reason>".
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#ifndef MFD_HUGETLB
#define MFD_HUGETLB 0x4U
#endif
#ifndef MFD_ALLOW_SEALING
#define MFD_ALLOW_SEALING 0x2U
#endif
#ifndef F_ADD_SEALS
#define F_ADD_SEALS 1033
#define F_GET_SEALS 1034
#define F_SEAL_SHRINK 0x2
#define F_SEAL_GROW 0x4
#endif
#ifndef SHM_HUGETLB
#define SHM_HUGETLB 04000
#endif

#define SIZE (4UL << 20)
#define PG 4096UL
#define SEALS (F_SEAL_SHRINK | F_SEAL_GROW)

static unsigned char pattern(size_t i)
{
	return (unsigned char)(i % 253);
}

/* The first offset in [from, SIZE) where p differs from the pattern, or SIZE. */
static size_t first_bad(const unsigned char *p, size_t from)
{
	for (size_t i = from; i < SIZE; i++)
		if (p[i] != pattern(i))
			return i;
	return SIZE;
}

static void fill(unsigned char *p, size_t from)
{
	for (size_t i = from; i < SIZE; i++)
		p[i] = pattern(i);
}

static unsigned char *map_anon(int type)
{
	unsigned char *p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, type | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);

	if (p == MAP_FAILED)
		fail("mmap MAP_HUGETLB errno=%d", errno);
	return p;
}

/* memfd: what is wrong with the fd, the shared or the private mapping, or NULL. */
static const char *memfd_bad(int fd, const unsigned char *shared, const unsigned char *priv, char *why)
{
	unsigned char buf[PG];
	struct stat st;
	size_t bad;

	if ((bad = first_bad(shared, 0)) != SIZE)
		return sprintf(why, "shared %zu", bad), why;
	for (size_t i = 0; i < PG; i++)
		if (priv[i] != 0x5a)
			return sprintf(why, "private %zu", i), why;
	if ((bad = first_bad(priv, PG)) != SIZE)
		return sprintf(why, "private %zu", bad), why;
	if (fstat(fd, &st) || (size_t)st.st_size != SIZE)
		return "size";
	if (fcntl(fd, F_GET_SEALS) != SEALS)
		return sprintf(why, "seals %d", fcntl(fd, F_GET_SEALS)), why;
	if (pread(fd, buf, PG, (off_t)PG) != (ssize_t)PG)
		return sprintf(why, "pread errno=%d", errno), why;
	for (size_t i = 0; i < PG; i++)
		if (buf[i] != pattern(PG + i))
			return "pread data";
	return NULL;
}

int main(int argc, char **argv)
{
	unsigned long long n = 0;
	unsigned char *p, *priv = NULL;
	volatile uint64_t *words = NULL;
	const char *mode;
	size_t from = 0;
	int fd = -1;

	report_init(argc, argv, 2, 2, "OUT private|shared|memfd|fork|sysv");
	report_ready();
	mode = argv[2];
	if (strcmp(mode, "private") == 0) {
		p = map_anon(MAP_PRIVATE);
	} else if (strcmp(mode, "shared") == 0) {
		p = map_anon(MAP_SHARED);
	} else if (strcmp(mode, "fork") == 0) {
		p = map_anon(MAP_SHARED);
		words = (volatile uint64_t *)p;
		from = PG;
	} else if (strcmp(mode, "memfd") == 0) {
		fd = (int)syscall(SYS_memfd_create, "criu-ts-huge", MFD_HUGETLB | MFD_ALLOW_SEALING);
		if (fd < 0)
			fail("memfd_create MFD_HUGETLB errno=%d", errno);
		if (ftruncate(fd, SIZE))
			fail("ftruncate errno=%d", errno);
		if (fcntl(fd, F_ADD_SEALS, SEALS))
			fail("F_ADD_SEALS errno=%d", errno);
		p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		priv = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
		if (p == MAP_FAILED || priv == MAP_FAILED)
			fail("mmap memfd errno=%d", errno);
	} else if (strcmp(mode, "sysv") == 0) {
		int id = shmget(IPC_PRIVATE, SIZE, IPC_CREAT | SHM_HUGETLB | 0600);

		if (id < 0)
			fail("shmget SHM_HUGETLB errno=%d", errno);
		p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			fail("shmat errno=%d", errno);
		if (shmctl(id, IPC_RMID, NULL))
			fail("IPC_RMID errno=%d", errno);
	} else {
		fail("unknown mode %s", mode);
	}
	fill(p, from);
	if (priv)
		memset(priv, 0x5a, PG);
	if (fd >= 0)
		report("FD %d", fd);
	if (priv)
		report("PRIVATE %lx", (unsigned long)priv);
	if (words) {
		pid_t child = fork();

		if (child < 0)
			fail("fork errno=%d", errno);
		if (child == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			for (;;) {
				words[1] = words[0];
				sleep_ms(1);
			}
		}
		report("CHILD %d", (int)child);
	}
	report("MAP %lx", (unsigned long)p);
	for (;;) {
		char why[64];
		const char *bad = NULL;
		size_t at;

		if (words) {
			/* Counted in sleeps, not on the clock: a freeze does not use it up. */
			words[0] = n + 1;
			for (int i = 0; i < 5000 && words[1] != n + 1; i++)
				sleep_ms(1);
			if (words[1] != n + 1)
				bad = "echo";
		}
		if (!bad && fd >= 0)
			bad = memfd_bad(fd, p, priv, why);
		else if (!bad && (at = first_bad(p, from)) != SIZE)
			bad = (sprintf(why, "%zu", at), why);
		if (bad)
			report("CHECK %llu bad %s", ++n, bad);
		else
			report("CHECK %llu ok", ++n);
		sleep_ms(20);
	}
}
