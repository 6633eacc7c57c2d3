/*
 * hugetlb OUT private|shared
 *
 * Maps 4 MiB of anonymous hugetlb memory (MAP_HUGETLB, 2 MiB pages; the
 * machine must have free huge pages: /proc/sys/vm/nr_hugepages), private or
 * shared, and fills it with a pattern.  Writes "READY <pid>",
 * "MAP <hex address>", then every 20 ms
 *   CHECK <n> ok                 (or "CHECK <n> bad <offset>")
 * Setup errors write "FAIL <reason>".
 */
#include "common.h"

#include <sys/mman.h>

#define SIZE (4UL << 20)

int main(int argc, char **argv)
{
	unsigned long long n = 0;
	unsigned char *p;
	int type;

	report_init(argc, argv, 2, 2, "OUT private|shared");
	report_ready();
	type = strcmp(argv[2], "shared") == 0 ? MAP_SHARED : MAP_PRIVATE;
	p = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, type | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
	if (p == MAP_FAILED)
		fail("mmap MAP_HUGETLB errno=%d", errno);
	for (size_t i = 0; i < SIZE; i++)
		p[i] = (unsigned char)(i % 253);
	report("MAP %lx", (unsigned long)p);
	for (;;) {
		size_t bad = SIZE;

		for (size_t i = 0; i < SIZE; i++)
			if (p[i] != (unsigned char)(i % 253)) {
				bad = i;
				break;
			}
		if (bad == SIZE)
			report("CHECK %llu ok", ++n);
		else
			report("CHECK %llu bad %zu", ++n, bad);
		sleep_ms(20);
	}
}
