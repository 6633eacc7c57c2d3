/*
 * pipe_reader OUT FIFO_PATH [rdonly]
 *
 * Opens the named FIFO (the caller creates it with mkfifo), writes
 * "READY <pid>" and then blocks in one single read() of up to 4096 bytes.
 *
 *   READ <text>     the bytes that read() returned, as one line: a single
 *                   trailing '\n' is dropped, '\\' and non-printable bytes are
 *                   escaped as "\\" / "\n" / "\xNN"; then exit 0
 *   EOF             read() returned 0 (every writer closed without writing;
 *                   only possible in rdonly mode); exit 0
 *   FAIL read errno=N
 *
 * Default mode opens the FIFO O_RDWR: open() does not wait for a writer
 * and the read() can never see EOF, so the process is guaranteed to sit in
 * read() until someone writes (e.g. `echo hi > FIFO`).  With the optional
 * "rdonly" argument it opens O_RDONLY instead, which blocks in open()
 * until a writer opens the FIFO; READY is written only after that.
 */
#include "common.h"

int main(int argc, char **argv)
{
	char buf[4096], text[4096 * 4 + 1];
	int fd, flags = O_RDWR;
	size_t n, t = 0;
	ssize_t r;

	report_init(argc, argv, 2, 3, "OUT FIFO_PATH [rdonly]");
	if (argc > 3) {
		if (strcmp(argv[3], "rdonly") != 0)
			fail("unknown mode '%s' (only 'rdonly')", argv[3]);
		flags = O_RDONLY;
	}

	while ((fd = open(argv[2], flags)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		fail("open %s errno=%d", argv[2], errno);

	report_ready();
	r = read(fd, buf, sizeof(buf)); /* the single blocking read */
	if (r < 0)
		fail("read errno=%d", errno);
	if (r == 0) {
		report("EOF");
		return 0;
	}

	n = (size_t)r;
	if (buf[n - 1] == '\n')
		n--;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)buf[i];

		if (c == '\\') {
			text[t++] = '\\';
			text[t++] = '\\';
		} else if (c == '\n') {
			text[t++] = '\\';
			text[t++] = 'n';
		} else if (c < 0x20 || c >= 0x7f) {
			t += (size_t)snprintf(text + t, 5, "\\x%02x", c);
		} else {
			text[t++] = (char)c;
		}
	}
	text[t] = '\0';
	report("READ %s", text);
	return 0;
}
