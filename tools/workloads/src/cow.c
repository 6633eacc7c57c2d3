/*
 * cow OUT
 *
 * Copy-on-write sharing between a parent and its child.  The parent maps
 * 64 private anonymous pages and fills them, then forks.  Afterwards:
 *   pages i % 4 == 0   the child writes its own bytes
 *   pages i % 4 == 1   the parent writes its own bytes
 *   pages i % 8 == 2   the child drops them (MADV_DONTNEED: zero for it)
 *   the others         nobody touches: parent and child still share them
 * Writes "READY <pid>", "CHILD <pid>", "MAP <hex address> 64", then both
 * check their whole view of the area every 20 ms:
 *   PARENT <n> ok | CHILD <n> ok     ("bad <page>" at the first wrong page)
 */
#include "common.h"

#include <sys/mman.h>

#define PG 4096
#define PAGES 64

static unsigned char *area;

static unsigned char expect(int i, int child)
{
	if (child && i % 4 == 0)
		return (unsigned char)(0xc0 + i);
	if (!child && i % 4 == 1)
		return (unsigned char)(0x80 + i);
	if (child && i % 8 == 2)
		return 0;
	return (unsigned char)(0x10 + i);
}

static void set_page(int i, unsigned char v)
{
	memset(area + (size_t)i * PG, v, PG);
}

static void check_loop(const char *who, int child)
{
	unsigned long long n = 0;

	for (;;) {
		int bad = -1;

		for (int i = 0; i < PAGES && bad < 0; i++)
			for (int j = 0; j < PG; j++)
				if (area[(size_t)i * PG + j] != expect(i, child)) {
					bad = i;
					break;
				}
		if (bad < 0)
			report("%s %llu ok", who, ++n);
		else
			report("%s %llu bad %d", who, ++n, bad);
		sleep_ms(20);
	}
}

int main(int argc, char **argv)
{
	pid_t child;

	report_init(argc, argv, 1, 1, "OUT");
	report_ready();
	area = mmap(NULL, PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (area == MAP_FAILED)
		fail("mmap errno=%d", errno);
	for (int i = 0; i < PAGES; i++)
		set_page(i, (unsigned char)(0x10 + i));
	child = fork();
	if (child < 0)
		fail("fork errno=%d", errno);
	if (child == 0) {
		for (int i = 0; i < PAGES; i++) {
			if (i % 4 == 0)
				set_page(i, expect(i, 1));
			else if (i % 8 == 2 && madvise(area + (size_t)i * PG, PG, MADV_DONTNEED))
				fail("madvise errno=%d", errno);
		}
		check_loop("CHILD", 1);
	}
	report("CHILD %d", (int)child);
	for (int i = 0; i < PAGES; i++)
		if (i % 4 == 1)
			set_page(i, expect(i, 0));
	report("MAP %lx %d", (unsigned long)area, PAGES);
	check_loop("PARENT", 0);
	return 0;
}
