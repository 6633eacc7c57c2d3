// Command gocriu-client drives a CRIU binary over RPC with go-criu (v5, Debian's
// golang-github-checkpoint-restore-go-criu-dev), as a go-criu user would:
//
//	gocriu-client -criu BINARY version
//	gocriu-client -criu BINARY features
//	gocriu-client -criu BINARY dump -dir DIR -pid PID [-leave-running] [-log-file F] [-log-level N] [-fail-at SCRIPT]
//	gocriu-client -criu BINARY restore -dir DIR [-log-file F] [-log-level N] [-fail-at SCRIPT] [-no-notify]
//
// go-criu execs `BINARY swrk FD` (SetCriuPath). Every notify callback prints one JSON line
// {"event":"notify","script":...,"pid":...} as it arrives; the action ends with one JSON line
// {"action":...,"ok":true,...} or {"action":...,"ok":false,"error":...}; exit status 0 or 1.
// With -fail-at SCRIPT the callback for SCRIPT returns an error, which makes go-criu stop
// answering and close its end of the socket in the middle of the action. With -no-notify, Dump and
// Restore get a nil Notify (notify_scripts unset), as podman passes for a restore; go-criu then fails
// on any NOTIFY it is sent. features: FeatureCheck (go-criu 5.3.0 hands back what it asked, so only
// the answer's success says anything).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"

	criu "github.com/checkpoint-restore/go-criu/v5"
	"github.com/checkpoint-restore/go-criu/v5/rpc"
	"google.golang.org/protobuf/proto"
)

func emit(fields map[string]interface{}) {
	b, err := json.Marshal(fields)
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(append(b, '\n'))
}

// recorder is a criu.Notify that prints each callback and remembers the restored pid.
type recorder struct {
	failAt      string
	restoredPid int32
}

func (r *recorder) note(script string, pid int32, withPid bool) error {
	ev := map[string]interface{}{"event": "notify", "script": script}
	if withPid {
		ev["pid"] = pid
	}
	emit(ev)
	if script == r.failAt {
		return fmt.Errorf("notify %s refused by the client", script)
	}
	return nil
}

func (r *recorder) PreDump() error       { return r.note("pre-dump", 0, false) }
func (r *recorder) PostDump() error      { return r.note("post-dump", 0, false) }
func (r *recorder) PreRestore() error    { return r.note("pre-restore", 0, false) }
func (r *recorder) NetworkLock() error   { return r.note("network-lock", 0, false) }
func (r *recorder) NetworkUnlock() error { return r.note("network-unlock", 0, false) }
func (r *recorder) PostResume() error    { return r.note("post-resume", 0, false) }
func (r *recorder) PostRestore(pid int32) error {
	r.restoredPid = pid
	return r.note("post-restore", pid, true)
}
func (r *recorder) SetupNamespaces(pid int32) error { return r.note("setup-namespaces", pid, true) }
func (r *recorder) PostSetupNamespaces() error      { return r.note("post-setup-namespaces", 0, false) }

func fail(action string, err error) int {
	emit(map[string]interface{}{"action": action, "ok": false, "error": err.Error()})
	return 1
}

func run() int {
	fs := flag.NewFlagSet("gocriu-client", flag.ContinueOnError)
	binary := fs.String("criu", "criu", "the binary go-criu execs as `BINARY swrk FD`")
	if err := fs.Parse(os.Args[1:]); err != nil || fs.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: gocriu-client -criu BINARY version|dump|restore [options]")
		return 2
	}
	action := fs.Arg(0)
	opts := flag.NewFlagSet(action, flag.ContinueOnError)
	dir := opts.String("dir", "", "images directory (passed as images_dir_fd)")
	pid := opts.Int("pid", 0, "pid of the tree to dump")
	leaveRunning := opts.Bool("leave-running", false, "leave the tree running after the dump")
	logFile := opts.String("log-file", "", "log file name (in the images directory)")
	logLevel := opts.Int("log-level", -1, "log level (0-4)")
	shellJob := opts.Bool("shell-job", false, "shell_job")
	failAt := opts.String("fail-at", "", "notify script whose callback returns an error")
	noNotify := opts.Bool("no-notify", false, "pass a nil Notify")
	if err := opts.Parse(fs.Args()[1:]); err != nil {
		return 2
	}

	c := criu.MakeCriu()
	c.SetCriuPath(*binary)

	if action == "version" {
		v, err := c.GetCriuVersion()
		if err != nil {
			return fail(action, err)
		}
		emit(map[string]interface{}{"action": action, "ok": true, "version": v})
		return 0
	}
	if action == "features" {
		_, err := c.FeatureCheck(&rpc.CriuFeatures{MemTrack: proto.Bool(true), LazyPages: proto.Bool(true)})
		if err != nil {
			return fail(action, err)
		}
		emit(map[string]interface{}{"action": action, "ok": true})
		return 0
	}
	if action != "dump" && action != "restore" {
		fmt.Fprintf(os.Stderr, "unknown action %q\n", action)
		return 2
	}
	if *dir == "" || (action == "dump" && *pid == 0) {
		fmt.Fprintln(os.Stderr, "-dir is needed, and -pid for dump")
		return 2
	}

	// go-criu's users (runc, podman) pass an open directory; criu reads it through /proc/<peer>/fd.
	d, err := os.Open(*dir)
	if err != nil {
		return fail(action, err)
	}
	defer d.Close()
	ro := &rpc.CriuOpts{ImagesDirFd: proto.Int32(int32(d.Fd()))}
	if *logFile != "" {
		ro.LogFile = proto.String(*logFile)
	}
	if *logLevel >= 0 {
		ro.LogLevel = proto.Int32(int32(*logLevel))
	}
	if *shellJob {
		ro.ShellJob = proto.Bool(true)
	}
	rec := &recorder{failAt: *failAt}
	var nfy criu.Notify = rec
	if *noNotify {
		nfy = nil
	}

	if action == "dump" {
		ro.Pid = proto.Int32(int32(*pid))
		ro.LeaveRunning = proto.Bool(*leaveRunning)
		if err := c.Dump(ro, nfy); err != nil {
			return fail(action, err)
		}
		emit(map[string]interface{}{"action": action, "ok": true})
		return 0
	}
	if err := c.Restore(ro, nfy); err != nil {
		return fail(action, err)
	}
	emit(map[string]interface{}{"action": action, "ok": true, "pid": rec.restoredPid})
	return 0
}

func main() {
	os.Exit(run())
}
