package e2e

import (
	"encoding/json"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

// waitCountCtl waits until ensemblectl counts want keys under prefix.
func ctlWaitCount(t *testing.T, e ectl, prefix string, want int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		out := e.ok("", "get", prefix, "--prefix", "--count-only")
		if strings.TrimSpace(out) == strconv.Itoa(want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s has %s keys, never %d", prefix, strings.TrimSpace(out), want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

var ctlLockedLine = regexp.MustCompile(`^locked mylock \(key (mylock/[0-9a-f]+), fencing revision (\d+)\)$`)

func TestCtlLock(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)

	first := e.start("lock", "mylock")
	m := ctlLockedLine.FindStringSubmatch(first.waitLine("locked mylock"))
	if m == nil {
		t.Fatalf("lock printed:\n%s", first.output())
	}
	rev1, _ := strconv.ParseInt(m[2], 10, 64)
	ctlExpect(t, e, m[1]+"\n\n", "get", "mylock/", "--prefix", "--keys-only")

	// A second holder waits (its key is queued behind the first) and runs
	// its command only once the first lets go.
	second := e.start("lock", "mylock", "sh", "-c", `echo "held $ENSEMBLE_LOCK_KEY $ENSEMBLE_LOCK_REV $ETCD_LOCK_REV"`)
	ctlWaitCount(t, e, "mylock/", 2)
	if strings.Contains(second.output(), "held") {
		t.Fatalf("the second holder ran while the first held the lock:\n%s", second.output())
	}
	if code := first.stop(); code != 0 {
		t.Fatalf("lock stopped by SIGINT exited %d:\n%s", code, first.output())
	}
	line := second.waitLine("held ")
	f := strings.Fields(line)
	if len(f) != 4 || !strings.HasPrefix(f[1], "mylock/") || f[2] != f[3] {
		t.Fatalf("the command saw %q", line)
	}
	rev2, _ := strconv.ParseInt(f[2], 10, 64)
	if rev2 <= rev1 {
		t.Fatalf("fencing revision went from %d to %d", rev1, rev2)
	}
	if code := second.wait(); code != 0 {
		t.Fatalf("lock with a command exited %d:\n%s", code, second.output())
	}
	if !strings.Contains(second.output(), "--- stderr ---\nlocked mylock (key "+f[1]+", fencing revision "+f[2]+")\n") {
		t.Fatalf("lock with a command did not report the lock on stderr:\n%s", second.output())
	}
	ctlWaitCount(t, e, "mylock/", 0)

	// The command's exit code is ensemblectl's, with no message of its own.
	stdout, stderr, code := e.run("", "lock", "mylock", "sh", "-c", "echo out; exit 3")
	if code != 3 || stdout != "out\n" || !strings.HasPrefix(stderr, "locked mylock ") || strings.Contains(stderr, "Error") {
		t.Fatalf("lock with a failing command: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	stdout, stderr, code = e.run("", "lock", "mylock", "/no/such/program")
	if code != 1 || stdout != "" || !regexp.MustCompile(`^locked mylock .*\nError: cannot run /no/such/program: .*\n$`).MatchString(stderr) {
		t.Fatalf("lock with a missing program: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}

	j := e.start("-w", "json", "lock", "--ttl", "5", "other")
	var info struct {
		Name     string `json:"name"`
		Key      string `json:"key"`
		Revision int64  `json:"revision"`
	}
	if err := json.Unmarshal([]byte(j.waitLine(`"revision"`)), &info); err != nil || info.Name != "other" ||
		!strings.HasPrefix(info.Key, "other/") || info.Revision <= rev2 {
		t.Fatalf("lock -w json: %s (%v)", j.output(), err)
	}
	j.stop()
	ctlWaitCount(t, e, "other/", 0)
}

func TestCtlElect(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)

	observer := e.start("elect", "-l", "job")
	alpha := e.start("elect", "job", "alpha")
	alpha.waitLine("alpha")
	observer.waitLine("alpha")
	if out := alpha.output(); !regexp.MustCompile(`^job/[0-9a-f]+\nalpha\n`).MatchString(out) {
		t.Fatalf("elect printed:\n%s", out)
	}

	beta := e.start("elect", "job", "beta")
	ctlWaitCount(t, e, "job/", 2)
	if strings.Contains(beta.output(), "beta") {
		t.Fatalf("a second candidate was elected while the first led:\n%s", beta.output())
	}
	// The leader resigns when interrupted; the next candidate takes over
	// and the observer sees it.
	if code := alpha.stop(); code != 0 {
		t.Fatalf("elect stopped by SIGINT exited %d:\n%s", code, alpha.output())
	}
	beta.waitLine("beta")
	observer.waitLine("beta")
	if code := beta.stop(); code != 0 {
		t.Fatalf("elect exited %d:\n%s", code, beta.output())
	}
	if code := observer.stop(); code != 0 {
		t.Fatalf("elect -l exited %d:\n%s", code, observer.output())
	}
	ctlWaitCount(t, e, "job/", 0)
}
