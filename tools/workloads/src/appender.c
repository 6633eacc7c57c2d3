/*
 * appender OUT FILE
 *
 * Opens FILE with O_WRONLY|O_APPEND|O_CREAT and every 10 ms appends the
 * line "<n>\n" (n = 1, 2, 3, ...) with a single write(), then reports
 *
 *   N <n>           line n is now in FILE
 *
 * Self-checks (each a "FAIL ..." + exit 1):
 *   - O_APPEND is still set on the fd (fcntl F_GETFL): restore must keep
 *     the open flags;
 *   - after each append the fd position equals the file size and the size
 *     grew by exactly the line length since our previous append, i.e.
 *     nobody else changed FILE and the restored file is the one we had.
 */
#include "common.h"

#include <sys/stat.h>

int main(int argc, char **argv)
{
	unsigned long long n = 0;
	struct stat st;
	off_t size;
	int fd;

	report_init(argc, argv, 2, 2, "OUT FILE");
	fd = open(argv[2], O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		fail("open %s errno=%d", argv[2], errno);
	if (fstat(fd, &st) < 0)
		fail("fstat errno=%d", errno);
	size = st.st_size;
	report_ready();

	for (;;) {
		char buf[32];
		int len, fl;
		ssize_t w;
		off_t pos;

		n++;
		len = snprintf(buf, sizeof(buf), "%llu\n", n);

		fl = fcntl(fd, F_GETFL);
		if (fl < 0)
			fail("fcntl errno=%d", errno);
		if (!(fl & O_APPEND))
			fail("O_APPEND lost (flags 0%o)", fl);

		while ((w = write(fd, buf, (size_t)len)) < 0 && errno == EINTR)
			;
		if (w != len)
			fail("write of line %llu returned %zd errno=%d", n, w, errno);

		pos = lseek(fd, 0, SEEK_CUR);
		if (fstat(fd, &st) < 0)
			fail("fstat errno=%d", errno);
		if (pos != st.st_size)
			fail("position %lld != size %lld after line %llu", (long long)pos,
			     (long long)st.st_size, n);
		if (st.st_size != size + len)
			fail("size %lld after line %llu, expected %lld", (long long)st.st_size, n,
			     (long long)(size + len));
		size = st.st_size;

		report("N %llu", n);
		sleep_ms(10);
	}
}
