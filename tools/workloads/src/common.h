/*
 * common.h - shared helpers for the criu-ts test workloads.
 *
 * Conventions every workload follows:
 *   - argv[1] is the "report" file.  It is opened with
 *     O_WRONLY|O_APPEND|O_CREAT and every report line is emitted with a
 *     single write() of the whole line (newline included), so a reader
 *     outside the process never sees a half-written line, and lines from
 *     several processes sharing the file never interleave.
 *   - On start a workload writes "READY <pid>".
 *   - Any error or failed self-check writes "FAIL <reason>" and exits 1.
 *   - At start every fd above 2 inherited from the launcher is closed, so a
 *     workload owns exactly stdin/stdout/stderr, the report (fd 3) and
 *     whatever it opens itself - the dumped state does not depend on fds
 *     leaked by the test runner.
 *
 * Everything here is static so each workload is a single translation unit.
 */
#ifndef WORKLOADS_COMMON_H
#define WORKLOADS_COMMON_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Helpers are static and may go unused in a given workload. */
#define HELPER static __attribute__((unused))

/* The report fd; -1 until report_open() succeeds. */
static int report_fd = -1;

/* Write one whole line to the report (format must not contain '\n'). */
HELPER __attribute__((format(printf, 1, 2))) void report(const char *fmt, ...)
{
	char line[16384 + 256]; /* fits pipe_reader's fully escaped 4 KiB read */
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2; /* truncated: still end the line */
	line[n++] = '\n';

	if (report_fd < 0) {
		/* No report file (bad argv): stderr is the only place left. */
		if (write(STDERR_FILENO, line, (size_t)n) < 0)
			return;
		return;
	}
	/* A single write(): with O_APPEND the whole line lands atomically.
	 * Retry only if nothing was written (EINTR before any transfer). */
	for (;;) {
		ssize_t w = write(report_fd, line, (size_t)n);
		if (w >= 0 || errno != EINTR)
			break;
	}
}

/* Report "FAIL <reason>" and exit 1. */
HELPER __attribute__((format(printf, 1, 2), noreturn)) void fail(const char *fmt, ...)
{
	char reason[3072];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	report("FAIL %s", reason);
	exit(1);
}

/* Open the report file from argv[1]; exits 1 if that is impossible. */
HELPER void report_open(const char *path)
{
	report_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (report_fd < 0) {
		report("FAIL open report %s errno=%d", path, errno);
		exit(1);
	}
}

/* Close inherited fds > 2, check argc, open the report; usage errors go
 * to the report (or to stderr if there is no report path). */
HELPER void report_init(int argc, char **argv, int min_args, int max_args, const char *usage)
{
	close_range(3, ~0U, 0); /* drop inherited fds; the report becomes fd 3 */
	if (argc >= 2)
		report_open(argv[1]);
	if (argc < min_args + 1 || argc > max_args + 1)
		fail("usage: %s %s", argc > 0 ? argv[0] : "workload", usage);
}

HELPER void report_ready(void)
{
	report("READY %d", (int)getpid());
}

/* Parse a non-negative decimal argument or fail. */
HELPER long long parse_num(const char *what, const char *s, long long min, long long max)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max)
		fail("bad %s '%s' (want %lld..%lld)", what, s, min, max);
	return v;
}

/* CLOCK_MONOTONIC in nanoseconds. */
HELPER int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/*
 * Relative sleep on CLOCK_MONOTONIC, restarted with the remaining time
 * when a signal (or a checkpoint/restore) interrupts it.  Relative, not an
 * absolute deadline, so a long freeze does not cause a burst of catch-up
 * iterations afterwards.
 */
HELPER void sleep_ms(long ms)
{
	struct timespec req = { ms / 1000, (ms % 1000) * 1000000L }, rem;
	int rc;

	while ((rc = clock_nanosleep(CLOCK_MONOTONIC, 0, &req, &rem)) == EINTR)
		req = rem;
	if (rc != 0)
		fail("clock_nanosleep errno=%d", rc);
}

/*
 * Async-signal-safe line building, for reporting from signal handlers
 * (printf-family functions are not async-signal-safe).  Each put_*()
 * writes at p and returns the number of chars written; no NUL.
 */
HELPER size_t put_str(char *p, const char *s)
{
	size_t n = strlen(s);

	memcpy(p, s, n);
	return n;
}

HELPER size_t put_dec(char *p, long long v)
{
	char tmp[24];
	size_t n = 0, len = 0;
	unsigned long long u = v < 0 ? -(unsigned long long)v : (unsigned long long)v;

	if (v < 0)
		p[len++] = '-';
	do {
		tmp[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	while (n)
		p[len++] = tmp[--n];
	return len;
}

/* 16 lowercase hex digits, zero-padded. */
HELPER size_t put_hex64(char *p, uint64_t v)
{
	for (int i = 15; i >= 0; i--, v >>= 4)
		p[i] = "0123456789abcdef"[v & 0xf];
	return 16;
}

/* Append '\n' to line[0..n) (room for it required) and write it whole. */
HELPER void report_raw(char *line, size_t n)
{
	int saved = errno;

	line[n++] = '\n';
	if (write(report_fd, line, n) < 0) {
		/* nowhere left to report a failed report */
	}
	errno = saved;
}

#endif /* WORKLOADS_COMMON_H */
