/*
 * shmem OUT [rmid]
 *
 * A parent and a child that share memory three ways and watch each other through it:
 *   - an anonymous shared mapping (MAP_SHARED|MAP_ANONYMOUS, 16 pages),
 *   - a memfd "criu-ts-shm" (8 pages) both map MAP_SHARED (its fd stays open in both),
 *   - a SysV segment (IPC_PRIVATE, 3 pages + 100 bytes, mode 0600) attached before the fork;
 *     with "rmid" it is IPC_RMID'ed right after the fork (it lives on while attached).
 * Each task (role 0 = parent, 1 = child) bumps its own counter n every 10 ms and stores it in slot
 * [role] of the three areas, then reads the other's slots: they must never go back
 * (else FAIL). Every 10th round it writes
 *   TICK <role> <n> <other's anon> <other's memfd> <other's sysv>
 * The child alone fills page 5 of the anonymous mapping (the parent never touches it) and writes
 *   PAGE5 <hash>
 * The parent also holds, unmapped, a memfd "criu-ts-fd" of 10000 bytes (byte i = i*7+3) at
 * position 1234 with seals F_SEAL_GROW|F_SEAL_SHRINK|F_SEAL_WRITE. Once the child is ready:
 *   LAYOUT child=<pid> anon=<hex> memfd=<hex> sysv=<id> sysvaddr=<hex> fd=<n> mfd=<n>
 *   READY <pid>
 * On SIGUSR1 the parent reads page 5 and the fd memfd (pread: the position stays) and writes
 *   SUM page5=<hash> fd=<hash> pos=<position> sysv=<hash of the segment past its first 64 bytes>
 * (the segment is filled with byte i = i*13+5 from byte 64 on at start).
 * The child exits quietly once its parent is gone.
 */
#include "common.h"

#include <signal.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>

#define PAGE 4096
#define ANON_PAGES 16
#define MEMFD_PAGES 8
#define SYSV_SIZE (3 * PAGE + 100)
#define FD_SIZE 10000
#define FD_POS 1234

static volatile sig_atomic_t want_sum;

static void on_sigusr1(int sig)
{
	(void)sig;
	want_sum = 1;
}

static uint64_t hash(const unsigned char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h;
}

int main(int argc, char **argv)
{
	report_init(argc, argv, 1, 2, "OUT [rmid]");
	int rmid = argc > 2 && strcmp(argv[2], "rmid") == 0;

	uint64_t *anon = mmap(NULL, ANON_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (anon == MAP_FAILED)
		fail("mmap anon errno=%d", errno);
	int mfd = memfd_create("criu-ts-shm", MFD_ALLOW_SEALING);
	if (mfd < 0 || ftruncate(mfd, MEMFD_PAGES * PAGE) < 0)
		fail("memfd errno=%d", errno);
	uint64_t *mem = mmap(NULL, MEMFD_PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (mem == MAP_FAILED)
		fail("mmap memfd errno=%d", errno);
	int sid = shmget(IPC_PRIVATE, SYSV_SIZE, IPC_CREAT | 0600);
	if (sid < 0)
		fail("shmget errno=%d", errno);
	uint64_t *sysv = shmat(sid, NULL, 0);
	if (sysv == (void *)-1)
		fail("shmat errno=%d", errno);

	for (int i = 64; i < SYSV_SIZE; i++)
		((unsigned char *)sysv)[i] = (unsigned char)(i * 13 + 5);

	pid_t parent = getpid();
	pid_t child = fork();
	if (child < 0)
		fail("fork errno=%d", errno);
	int role = child == 0 ? 1 : 0;
	if (role == 0 && rmid && shmctl(sid, IPC_RMID, NULL) < 0)
		fail("IPC_RMID errno=%d", errno);

	int ffd = -1;
	if (role == 1) {
		uint64_t *p5 = anon + 5 * PAGE / 8;
		for (int i = 0; i < PAGE / 8; i++)
			p5[i] = (uint64_t)(i + 1) * 0x9e3779b97f4a7c15ULL;
		report("PAGE5 %016llx", (unsigned long long)hash((unsigned char *)p5, PAGE));
		__atomic_store_n(&anon[8], 1, __ATOMIC_RELEASE);
	} else {
		unsigned char buf[FD_SIZE];
		for (int i = 0; i < FD_SIZE; i++)
			buf[i] = (unsigned char)(i * 7 + 3);
		ffd = memfd_create("criu-ts-fd", MFD_ALLOW_SEALING);
		if (ffd < 0 || write(ffd, buf, FD_SIZE) != FD_SIZE || lseek(ffd, FD_POS, SEEK_SET) != FD_POS)
			fail("fd memfd errno=%d", errno);
		if (fcntl(ffd, F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE) < 0)
			fail("F_ADD_SEALS errno=%d", errno);
		signal(SIGUSR1, on_sigusr1);
		int64_t deadline = mono_ns() + 10000000000LL;
		while (!__atomic_load_n(&anon[8], __ATOMIC_ACQUIRE)) {
			if (mono_ns() > deadline)
				fail("child never got ready");
			sleep_ms(1);
		}
		report("LAYOUT child=%d anon=%lx memfd=%lx sysv=%d sysvaddr=%lx fd=%d mfd=%d", (int)child,
		       (unsigned long)anon, (unsigned long)mem, sid, (unsigned long)sysv, ffd, mfd);
		report_ready();
	}

	uint64_t n = 0, seen[3] = { 0, 0, 0 };
	for (;;) {
		if (role == 1 && getppid() != parent)
			exit(0);
		n++;
		__atomic_store_n(&anon[role], n, __ATOMIC_RELEASE);
		__atomic_store_n(&mem[role], n, __ATOMIC_RELEASE);
		__atomic_store_n(&sysv[role], n, __ATOMIC_RELEASE);
		uint64_t now[3] = { __atomic_load_n(&anon[1 - role], __ATOMIC_ACQUIRE),
				    __atomic_load_n(&mem[1 - role], __ATOMIC_ACQUIRE),
				    __atomic_load_n(&sysv[1 - role], __ATOMIC_ACQUIRE) };
		for (int i = 0; i < 3; i++) {
			if (now[i] < seen[i])
				fail("role %d: the other's counter %d went back from %llu to %llu", role, i,
				     (unsigned long long)seen[i], (unsigned long long)now[i]);
			seen[i] = now[i];
		}
		if (anon[role] != n || mem[role] != n || sysv[role] != n)
			fail("role %d: my own counter changed under me", role);
		if (n % 10 == 0)
			report("TICK %d %llu %llu %llu %llu", role, (unsigned long long)n, (unsigned long long)now[0],
			       (unsigned long long)now[1], (unsigned long long)now[2]);
		if (role == 0 && want_sum) {
			unsigned char buf[FD_SIZE];
			want_sum = 0;
			if (pread(ffd, buf, FD_SIZE, 0) != FD_SIZE)
				fail("pread fd memfd errno=%d", errno);
			report("SUM page5=%016llx fd=%016llx pos=%lld sysv=%016llx",
			       (unsigned long long)hash((unsigned char *)(anon + 5 * PAGE / 8), PAGE),
			       (unsigned long long)hash(buf, FD_SIZE), (long long)lseek(ffd, 0, SEEK_CUR),
			       (unsigned long long)hash((unsigned char *)sysv + 64, SYSV_SIZE - 64));
		}
		sleep_ms(10);
	}
}
