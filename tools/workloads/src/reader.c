/*
 * reader OUT FILE [follow]
 *
 * Opens FILE (text, one decimal number per line) read-only and every
 * 10 ms reads the next line and reports it:
 *
 *   LINE <text>     the line, without its '\n'
 *   EOF <count>     end of file reached after <count> lines; exit 0
 *                   (in "follow" mode it instead keeps polling every 10 ms
 *                   for more data, like tail -f, and never writes EOF)
 *
 * The file is read with read() one byte at a time, so the fd's file
 * position always sits exactly after the last reported line - the test
 * can check the position (/proc/<pid>/fdinfo) survives a restore.
 *
 * Self-check: every line must be a number equal to the previous line + 1
 * (the first line may be any number): "FAIL line N: got X, expected Y".
 */
#include "common.h"

#define MAX_LINE 4000

int main(int argc, char **argv)
{
	char line[MAX_LINE + 1];
	size_t len = 0;
	long long prev = 0, count = 0;
	int fd, follow = 0;

	report_init(argc, argv, 2, 3, "OUT FILE [follow]");
	if (argc > 3) {
		if (strcmp(argv[3], "follow") != 0)
			fail("unknown mode '%s' (only 'follow')", argv[3]);
		follow = 1;
	}
	fd = open(argv[2], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		fail("open %s errno=%d", argv[2], errno);
	report_ready();

	for (;;) {
		char c;
		ssize_t r = read(fd, &c, 1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			fail("read errno=%d", errno);
		}
		if (r == 0 && follow) {
			/* Partial line (if any) stays in line[] until completed. */
			sleep_ms(10);
			continue;
		}
		if (r == 1 && c != '\n') {
			if (len >= MAX_LINE)
				fail("line %lld longer than %d bytes", count + 1, MAX_LINE);
			line[len++] = c;
			continue;
		}
		/* End of a line, or EOF (with an unterminated last line or none). */
		if (r == 1 || len > 0) {
			char *end;
			long long v;

			line[len] = '\0';
			count++;
			errno = 0;
			v = strtoll(line, &end, 10);
			if (errno != 0 || end == line || *end != '\0')
				fail("line %lld is not a number: '%s'", count, line);
			if (count > 1 && v != prev + 1)
				fail("line %lld: got %lld, expected %lld", count, v, prev + 1);
			prev = v;
			len = 0;
			report("LINE %s", line);
			if (r == 1) {
				sleep_ms(10);
				continue;
			}
		}
		report("EOF %lld", count);
		return 0;
	}
}
