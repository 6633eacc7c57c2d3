/*
 * unlinked OUT ghost DIR HOLE_MIB
 * unlinked OUT link DIR
 * unlinked OUT fifo DIR
 *
 * Holds files whose names are gone, then reports on them at every SIGUSR1.
 *
 * ghost: DIR/data gets 4 KiB of data at 0 and 4 KiB at HOLE_MIB MiB + 4 KiB
 * (a hole of HOLE_MIB MiB between), 4 KiB more of length (a hole at the
 * end), owner 1234:4321, mode 02640, atime 1000.000123 s and mtime
 * 2000.000456 s.  It is held by fd a (read-write, at position 100), fd b
 * (read-only, its own open), fd c (O_PATH) and a shared read-only mapping
 * of its first page, then unlinked.
 *
 * link: DIR/data (3000 bytes) gets a second name DIR/data.link, is held by
 * fd a (read-write, at position 10), then DIR/data is unlinked: the file
 * still has a name, just not the one it was opened by.
 *
 * fifo: DIR/fifo gets 100 bytes written through an O_RDWR end, which is
 * closed; an O_RDONLY|O_NONBLOCK end (fd a) holds the FIFO; then unlinked.
 *
 * Writes "READY <pid>", then at each SIGUSR1 one line per fd and mapping:
 *
 *   FD <n> ino=<> dev=<> nlink=<> size=<> blocks=<> uid=<> gid=<> mode=<oct>
 *        atime=<s.ns> mtime=<s.ns> pos=<> flags=<oct> data=<off+len,...> crc=<hex of the data runs> link=<path>
 *   MAP ino=<> dev=<> crc=<hex of the mapped page>
 *   FIFO <n> ino=<> mode=<oct> bytes=<count read> crc=<hex> link=<path>
 *
 * then "DONE <k>" (k counts the reports).  The FIFO's bytes are read (and
 * so consumed) by the report.
 */
#include "common.h"

#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#define KIB 4096

static uint32_t crc32(uint32_t crc, const unsigned char *p, size_t n)
{
	/* bitwise CRC-32 (IEEE), enough for a few MiB */
	crc = ~crc;
	while (n--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = (crc >> 1) ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

static void fill(unsigned char *buf, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

/* The runs of data (SEEK_DATA/SEEK_HOLE), as "off+len,off+len". */
static void data_runs(int fd, off_t size, char *out, size_t room)
{
	off_t hole = 0;
	size_t used = 0;

	out[0] = '\0';
	while (hole < size) {
		off_t data = lseek(fd, hole, SEEK_DATA);

		if (data < 0)
			break;
		hole = lseek(fd, data, SEEK_HOLE);
		if (hole < 0)
			fail("SEEK_HOLE errno=%d", errno);
		used += (size_t)snprintf(out + used, room - used, "%s%lld+%lld", used ? "," : "", (long long)data,
					 (long long)(hole - data));
		if (used >= room)
			fail("too many data runs");
	}
}

/* CRC of the data runs of the file, each preceded by its offset (holes read as zeros anyway). */
static uint32_t file_crc(int fd, off_t size)
{
	static unsigned char buf[1 << 16];
	uint32_t crc = 0;
	off_t off = 0;

	while (off < size) {
		off_t data = lseek(fd, off, SEEK_DATA);
		off_t end;

		if (data < 0)
			break;
		end = lseek(fd, data, SEEK_HOLE);
		if (end < 0 || end > size)
			end = size;
		crc = crc32(crc, (const unsigned char *)&data, sizeof(data));
		for (off = data; off < end;) {
			size_t want = (size_t)(end - off) < sizeof(buf) ? (size_t)(end - off) : sizeof(buf);
			ssize_t n = pread(fd, buf, want, off);

			if (n <= 0)
				fail("pread errno=%d", errno);
			crc = crc32(crc, buf, (size_t)n);
			off += n;
		}
	}
	return crc;
}

static void fd_link(int fd, char *out, size_t room)
{
	char path[64];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, out, room - 1);
	out[n < 0 ? 0 : n] = '\0';
}

static void report_file(const char *name, int fd, int opath)
{
	struct stat st;
	char runs[4096] = "", link[4096];
	uint32_t crc = 0;
	off_t pos = opath ? 0 : lseek(fd, 0, SEEK_CUR);
	int flags = fcntl(fd, F_GETFL);

	if (fstat(fd, &st) < 0)
		fail("fstat %s errno=%d", name, errno);
	fd_link(fd, link, sizeof(link));
	if (!opath) {
		/* read through a description of our own: the fd's position stays */
		char self[64];
		int r;

		snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
		r = open(self, O_RDONLY | O_NOATIME | O_CLOEXEC);
		if (r < 0)
			fail("reopen %s errno=%d", name, errno);
		data_runs(r, st.st_size, runs, sizeof(runs));
		crc = file_crc(r, st.st_size);
		close(r);
	}
	report("FD %s ino=%llu dev=%llu nlink=%llu size=%lld blocks=%lld uid=%u gid=%u mode=%o atime=%lld.%09ld "
	       "mtime=%lld.%09ld pos=%lld flags=%o data=%s crc=%08x link=%s",
	       name, (unsigned long long)st.st_ino, (unsigned long long)st.st_dev, (unsigned long long)st.st_nlink,
	       (long long)st.st_size, (long long)st.st_blocks, st.st_uid, st.st_gid, st.st_mode,
	       (long long)st.st_atim.tv_sec, st.st_atim.tv_nsec, (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	       (long long)pos, flags, runs, crc, link);
}

static volatile sig_atomic_t asked;

static void on_usr1(int sig)
{
	(void)sig;
	asked = 1;
}

int main(int argc, char **argv)
{
	static unsigned char buf[KIB];
	char path[4096], link_path[4096];
	int a = -1, b = -1, c = -1;
	unsigned char *map = NULL;
	const char *mode;
	sigset_t block, old;

	report_init(argc, argv, 3, 4, "ghost DIR HOLE_MIB | link DIR | fifo DIR");
	mode = argv[2];
	if (strcmp(mode, "ghost") == 0) {
		long long hole_mib = parse_num("HOLE_MIB", argc > 4 ? argv[4] : "", 0, 1 << 20);
		off_t second = (off_t)hole_mib * 1024 * 1024 + KIB;
		struct timespec times[2] = { { 1000, 123000 }, { 2000, 456000 } };

		snprintf(path, sizeof(path), "%s/data", argv[3]);
		a = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (a < 0)
			fail("open %s errno=%d", path, errno);
		fill(buf, KIB, 1);
		if (pwrite(a, buf, KIB, 0) != KIB)
			fail("pwrite errno=%d", errno);
		fill(buf, KIB, 2);
		if (pwrite(a, buf, KIB, second) != KIB)
			fail("pwrite errno=%d", errno);
		if (ftruncate(a, second + 2 * KIB) < 0)
			fail("ftruncate errno=%d", errno);
		if (fchown(a, 1234, 4321) < 0 || fchmod(a, 02640) < 0)
			fail("fchown/fchmod errno=%d", errno);
		if (lseek(a, 100, SEEK_SET) != 100)
			fail("lseek errno=%d", errno);
		b = open(path, O_RDONLY | O_CLOEXEC);
		c = open(path, O_PATH | O_CLOEXEC);
		if (b < 0 || c < 0)
			fail("open again errno=%d", errno);
		map = mmap(NULL, KIB, PROT_READ, MAP_SHARED, b, 0);
		if (map == MAP_FAILED)
			fail("mmap errno=%d", errno);
		if (futimens(a, times) < 0)
			fail("futimens errno=%d", errno);
		if (unlink(path) < 0)
			fail("unlink errno=%d", errno);
	} else if (strcmp(mode, "link") == 0) {
		snprintf(path, sizeof(path), "%s/data", argv[3]);
		snprintf(link_path, sizeof(link_path), "%s/data.link", argv[3]);
		a = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (a < 0)
			fail("open %s errno=%d", path, errno);
		fill(buf, KIB, 3);
		if (write(a, buf, 3000) != 3000)
			fail("write errno=%d", errno);
		if (lseek(a, 10, SEEK_SET) != 10)
			fail("lseek errno=%d", errno);
		if (link(path, link_path) < 0 || unlink(path) < 0)
			fail("link/unlink errno=%d", errno);
	} else if (strcmp(mode, "fifo") == 0) {
		int w;

		snprintf(path, sizeof(path), "%s/fifo", argv[3]);
		if (mkfifo(path, 0640) < 0)
			fail("mkfifo errno=%d", errno);
		w = open(path, O_RDWR | O_CLOEXEC);
		a = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (w < 0 || a < 0)
			fail("open fifo errno=%d", errno);
		fill(buf, 100, 4);
		if (write(w, buf, 100) != 100)
			fail("write fifo errno=%d", errno);
		close(w);
		if (unlink(path) < 0)
			fail("unlink errno=%d", errno);
	} else {
		fail("unknown mode %s", mode);
	}

	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigprocmask(SIG_BLOCK, &block, &old);
	signal(SIGUSR1, on_usr1);
	report_ready();
	for (int k = 1;; k++) {
		while (!asked)
			sigsuspend(&old);
		asked = 0;
		if (strcmp(mode, "fifo") == 0) {
			struct stat st;
			char link[4096];
			ssize_t n = read(a, buf, sizeof(buf));

			fstat(a, &st);
			fd_link(a, link, sizeof(link));
			report("FIFO a ino=%llu mode=%o bytes=%lld crc=%08x link=%s", (unsigned long long)st.st_ino,
			       st.st_mode, (long long)n, n > 0 ? crc32(0, buf, (size_t)n) : 0, link);
		} else {
			report_file("a", a, 0);
			if (b >= 0)
				report_file("b", b, 0);
			if (c >= 0)
				report_file("c", c, 1);
			if (map) {
				char mf[128];
				struct stat st;

				snprintf(mf, sizeof(mf), "/proc/self/map_files/%lx-%lx", (unsigned long)map,
					 (unsigned long)map + KIB);
				if (stat(mf, &st) < 0)
					fail("stat %s errno=%d", mf, errno);
				report("MAP ino=%llu dev=%llu crc=%08x", (unsigned long long)st.st_ino,
				       (unsigned long long)st.st_dev, crc32(0, map, KIB));
			}
		}
		report("DONE %d", k);
	}
}
