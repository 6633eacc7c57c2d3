/*
 * counter OUT [interval_ms]
 *
 * Writes 1, 2, 3, ... to the report, one number per line, every
 * interval_ms (default 10) using a relative CLOCK_MONOTONIC
 * clock_nanosleep.
 *
 * Self-check: the count is kept in three places that live in different
 * kinds of memory - a .bss variable, an anonymous mmap()ed page and a
 * stack variable - and all three must agree before every increment.
 * A restore that loses or mixes up any of those mappings shows up as
 * "FAIL counter copies differ ...".
 */
#include "common.h"

#include <sys/mman.h>

static volatile unsigned long long bss_count; /* copy 1: .bss */

int main(int argc, char **argv)
{
	volatile unsigned long long *page_count; /* copy 2: anon mmap page */
	volatile unsigned long long stack_count = 0; /* copy 3: stack */
	long interval = 10;

	report_init(argc, argv, 1, 2, "OUT [interval_ms]");
	if (argc > 2)
		interval = (long)parse_num("interval_ms", argv[2], 0, 3600000);

	page_count = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (page_count == MAP_FAILED)
		fail("mmap errno=%d", errno);
	*page_count = 0;
	bss_count = 0;

	report_ready();
	for (;;) {
		unsigned long long c = bss_count;

		if (*page_count != c || stack_count != c)
			fail("counter copies differ bss=%llu mmap=%llu stack=%llu", c, *page_count,
			     stack_count);
		c++;
		bss_count = c;
		*page_count = c;
		stack_count = c;
		report("%llu", c);
		sleep_ms(interval);
	}
}
