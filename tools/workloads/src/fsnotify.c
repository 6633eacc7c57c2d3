/*
 * fsnotify OUT fanotify DIR [MOUNTDIR]
 * fsnotify OUT fanotify-unread DIR
 *
 * fanotify: a notification group (FAN_CLASS_NOTIF, fd 4) with an inode mark
 * on DIR (FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD), an ignored mask for
 * FAN_CLOSE_WRITE on DIR/ignored (created first; FAN_MARK_IGNORED_SURV_MODIFY,
 * so writing the file does not clear it) and, if MOUNTDIR is given, a mount
 * mark on it (FAN_CLOSE_WRITE).  Writes "MARKED", then reads events forever
 * (blocking read), one line per event, with the path of the file the event
 * carries:
 *
 *   FAN mask=<hex> path=<path>
 *
 * fanotify-unread: the same group (FAN_NONBLOCK) and inode mark, then it
 * creates DIR/queued itself, so one event waits unread in the group; writes
 * "QUEUED" and waits in sigsuspend().  On SIGUSR1 it reads the group and
 * reports each event as a FAN line, then "DRAINED".
 */
#include "common.h"

#include <limits.h>
#include <signal.h>
#include <sys/fanotify.h>

static volatile sig_atomic_t drain_now;

static void on_usr1(int sig)
{
	(void)sig;
	drain_now = 1;
}

static void touch(const char *path)
{
	int f = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	if (f < 0)
		fail("open %s errno=%d", path, errno);
	close(f);
}

static int fan_group(const char *dir, int flags)
{
	int fd = fanotify_init(FAN_CLASS_NOTIF | FAN_CLOEXEC | flags, O_RDONLY | O_LARGEFILE);

	if (fd < 0)
		fail("fanotify_init errno=%d", errno);
	if (fanotify_mark(fd, FAN_MARK_ADD, FAN_CLOSE_WRITE | FAN_EVENT_ON_CHILD, AT_FDCWD, dir) < 0)
		fail("fanotify_mark %s errno=%d", dir, errno);
	return fd;
}

/* Report the events of one read; returns 0 when nothing was there (EAGAIN). */
static int fan_read(int fd)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct fanotify_event_metadata))));
	ssize_t n = read(fd, buf, sizeof(buf));
	struct fanotify_event_metadata *ev;

	if (n < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (n <= 0)
		fail("read fanotify n=%zd errno=%d", n, errno);
	for (ev = (struct fanotify_event_metadata *)buf; FAN_EVENT_OK(ev, n); ev = FAN_EVENT_NEXT(ev, n)) {
		char link[64], path[PATH_MAX];
		ssize_t len = -1;

		if (ev->fd >= 0) {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", ev->fd);
			len = readlink(link, path, sizeof(path) - 1);
			close(ev->fd);
		}
		path[len < 0 ? 0 : len] = '\0';
		report("FAN mask=%llx path=%s", (unsigned long long)ev->mask, len < 0 ? "-" : path);
	}
	return 1;
}

static void run_fanotify(const char *dir, const char *mnt)
{
	char ignored[PATH_MAX];
	int fd;

	/* DIR/ignored exists first: its writes are ignored by an ignored mask that survives them. */
	snprintf(ignored, sizeof(ignored), "%s/ignored", dir);
	touch(ignored);
	fd = fan_group(dir, 0);
	if (fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_IGNORED_MASK | FAN_MARK_IGNORED_SURV_MODIFY, FAN_CLOSE_WRITE,
			  AT_FDCWD, ignored) < 0)
		fail("fanotify_mark ignored %s errno=%d", ignored, errno);
	if (mnt && fanotify_mark(fd, FAN_MARK_ADD | FAN_MARK_MOUNT, FAN_CLOSE_WRITE, AT_FDCWD, mnt) < 0)
		fail("fanotify_mark mount %s errno=%d", mnt, errno);
	report_ready();
	report("MARKED");
	for (;;)
		fan_read(fd);
}

static void run_fanotify_unread(const char *dir)
{
	char queued[PATH_MAX];
	int fd = fan_group(dir, FAN_NONBLOCK);
	sigset_t usr1, others;

	/* SIGUSR1 stays blocked but while waiting in sigsuspend(): none can slip in before the wait. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, &others);
	signal(SIGUSR1, on_usr1);
	snprintf(queued, sizeof(queued), "%s/queued", dir);
	touch(queued);
	report_ready();
	report("QUEUED");
	while (!drain_now)
		sigsuspend(&others);
	while (fan_read(fd))
		;
	report("DRAINED");
	for (;;)
		sleep_ms(1000);
}

int main(int argc, char **argv)
{
	report_init(argc, argv, 3, 4, "fanotify DIR [MOUNTDIR] | fanotify-unread DIR");
	if (!strcmp(argv[2], "fanotify"))
		run_fanotify(argv[3], argc == 5 ? argv[4] : NULL);
	else if (!strcmp(argv[2], "fanotify-unread") && argc == 4)
		run_fanotify_unread(argv[3]);
	fail("bad mode '%s' or argument count", argv[2]);
}
