/*
 * aio OUT
 *
 * A Linux native AIO context (io_setup) kept across a checkpoint. At start
 * it sets up a context for 16 requests and a memfd, then submits ring->nr + 3
 * writes to the memfd through it one by one (each with its number as
 * aio_data), reaping every completion at once except the last two: the
 * ring's head and tail have wrapped and two completed events wait in it.
 * Writes
 *   RING ctx=<hex> nr=<n> head=<h> tail=<t>
 * (ctx is the context id, the ring's address) and waits for SIGUSR1. After
 * it, every 20 ms, through the same context id:
 *   CHECK <n> leftover=ok io=ok head=<h> tail=<t>
 * leftover: the first round reaps the two waiting events, which must carry
 * their aio_data and result (later rounds find none left: ok); io: a write
 * then a read back of the memfd through the context both complete with the
 * data written. head/tail are read from the ring after the round.
 * Any error writes "FAIL <reason>".
 */
#include "common.h"

#include <linux/aio_abi.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/syscall.h>

struct aio_ring {
	unsigned id, nr, head, tail, magic, compat_features, incompat_features, header_length;
};

static aio_context_t ctx;
static int fd;
static volatile sig_atomic_t go;

static void on_usr1(int sig)
{
	(void)sig;
	go = 1;
}

static void submit(unsigned short op, uint64_t data, void *buf, size_t len, off_t off)
{
	struct iocb cb = { 0 }, *cbp = &cb;

	cb.aio_data = data;
	cb.aio_lio_opcode = op;
	cb.aio_fildes = (uint32_t)fd;
	cb.aio_buf = (uint64_t)(uintptr_t)buf;
	cb.aio_nbytes = len;
	cb.aio_offset = off;
	if (syscall(__NR_io_submit, ctx, 1, &cbp) != 1)
		fail("io_submit of %llu errno=%d", (unsigned long long)data, errno);
}

/* Reaps exactly n events (n <= 4) into ev. */
static void reap(struct io_event *ev, long n)
{
	long r = syscall(__NR_io_getevents, ctx, n, n, ev, NULL);

	if (r != n)
		fail("io_getevents want %ld got %ld errno=%d", n, r, errno);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	volatile struct aio_ring *ring;
	struct io_event ev[4];
	unsigned long long n = 0, value = 0, back;
	unsigned nr, i;
	const char *left = "ok";

	report_init(argc, argv, 1, 1, "OUT");
	report_ready();
	if (sigaction(SIGUSR1, &sa, NULL))
		fail("sigaction errno=%d", errno);
	if (syscall(__NR_io_setup, 16, &ctx) < 0)
		fail("io_setup errno=%d", errno);
	fd = memfd_create("aio", 0);
	if (fd < 0 || ftruncate(fd, 65536))
		fail("memfd errno=%d", errno);
	ring = (struct aio_ring *)ctx;
	nr = ring->nr;
	for (i = 0; i < nr + 3; i++) {
		value = i;
		submit(IOCB_CMD_PWRITE, i, &value, sizeof(value), (off_t)(i % 64) * 8);
		if (i >= nr + 1)
			continue; /* the last two stay in the ring */
		reap(ev, 1);
		if (ev[0].data != i || ev[0].res != sizeof(value))
			fail("event %u: data=%llu res=%lld", i, (unsigned long long)ev[0].data, (long long)ev[0].res);
	}
	report("RING ctx=%llx nr=%u head=%u tail=%u", (unsigned long long)ctx, nr, ring->head, ring->tail);

	while (!go)
		sleep_ms(5);
	for (;;) {
		const char *io = "ok";

		if (n == 0) {
			reap(ev, 2);
			for (i = 0; i < 2; i++)
				if (ev[i].data != nr + 1 + i || ev[i].res != sizeof(value))
					left = "bad";
		}
		value = 0xa10000000ULL + n;
		back = 0;
		submit(IOCB_CMD_PWRITE, 1000000 + n, &value, sizeof(value), 4096);
		reap(ev, 1);
		if (ev[0].data != 1000000 + n || ev[0].res != sizeof(value))
			io = "bad";
		submit(IOCB_CMD_PREAD, 2000000 + n, &back, sizeof(back), 4096);
		reap(ev, 1);
		if (ev[0].data != 2000000 + n || ev[0].res != sizeof(back) || back != value)
			io = "bad";
		report("CHECK %llu leftover=%s io=%s head=%u tail=%u", ++n, left, io, ring->head, ring->tail);
		sleep_ms(20);
	}
}
