package e2e

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"

	"ensemble/tests/framework"
)

func TestCtlWatch(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)
	e.ok("", "put", "w/a", "0")
	from := ctlRev(t, e) + 1

	// Starting at a revision makes the events independent of when the
	// watch is set up.
	w := e.start("watch", "w/", "--prefix", "--prev-kv", "--rev", fmt.Sprint(from))
	e.ok("", "put", "w/a", "1")
	e.ok("", "put", "other", "x")
	e.ok("", "del", "w/a")
	w.waitLine("DELETE")
	if code := w.stop(); code != 0 {
		t.Fatalf("watch stopped by SIGINT exited %d:\n%s", code, w.output())
	}
	want := "PUT\nw/a\n0\nw/a\n1\nDELETE\nw/a\n1\nw/a\n\n--- stderr ---\n"
	if got := w.output(); got != want {
		t.Fatalf("watch printed %q, want %q", got, want)
	}

	// History: a watch from an old revision replays what happened since.
	h := e.start("-w", "json", "watch", "w/a", "--rev", fmt.Sprint(from-1))
	line := h.waitLine(`"Events"`)
	var doc struct {
		Header struct {
			Revision int64 `json:"revision"`
		}
		Events []struct {
			Type int `json:"type"`
			Kv   struct {
				Key         []byte `json:"key"`
				Value       []byte `json:"value"`
				ModRevision int64  `json:"mod_revision"`
			} `json:"kv"`
		}
	}
	if err := json.Unmarshal([]byte(line), &doc); err != nil || len(doc.Events) == 0 ||
		string(doc.Events[0].Kv.Key) != "w/a" || string(doc.Events[0].Kv.Value) != "0" || doc.Events[0].Kv.ModRevision != from-1 {
		t.Fatalf("watch -w json: %s (%v)", line, err)
	}
	h.stop()

	// Interactive: watches and progress requests from stdin. The progress
	// notification shows the watch is in place before the write.
	i := e.start("watch", "-i")
	i.send("watch w/b --prev-kv")
	i.send("progress")
	i.waitLine("progress notify: ")
	e.ok("", "put", "w/b", "x")
	i.waitLine("w/b")
	i.send("not a command")
	i.waitStderr(`Invalid line "not a command"`)
	if i.exited() {
		t.Fatalf("a bad line ended the interactive watch:\n%s", i.output())
	}
	if code := i.stop(); code != 0 {
		t.Fatalf("watch -i exited %d:\n%s", code, i.output())
	}

	// Progress notifications are asked for; the server sends them at its
	// own interval, so only the request is checked here.
	p := e.start("watch", "w/c", "--progress-notify", "--rev", fmt.Sprint(ctlRev(t, e)+1))
	e.ok("", "put", "w/c", "1")
	p.waitLine("w/c")
	p.stop()

	// A watch the server cancels (its start revision is compacted) fails
	// with one line.
	rev := ctlRev(t, e)
	e.ok("", "compaction", fmt.Sprint(rev))
	e.fails(1, "compacted", "watch", "w/a", "--rev", "2")
}

var ctlLeaseGranted = regexp.MustCompile(`^lease ([0-9a-f]{16}) granted with TTL\(100s\)\n$`)

func TestCtlLease(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)

	out := e.ok("", "lease", "grant", "100")
	m := ctlLeaseGranted.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("lease grant printed %q", out)
	}
	id := m[1]
	e.ok("", "put", "leased", "v", "--lease", id)

	out = e.ok("", "lease", "timetolive", id, "--keys")
	if !regexp.MustCompile(`^lease ` + id + ` granted with TTL\(100s\), remaining\((9\d|100)s\), attached keys\(\[leased\]\)\n$`).MatchString(out) {
		t.Fatalf("lease timetolive --keys printed %q", out)
	}
	out = e.ok("", "lease", "keep-alive", "--once", id)
	if out != fmt.Sprintf("lease %s keepalived with TTL(100)\n", id) {
		t.Fatalf("lease keep-alive --once printed %q", out)
	}
	k := e.start("lease", "keep-alive", id)
	k.waitLine("keepalived with TTL(100)")
	if code := k.stop(); code != 0 {
		t.Fatalf("keep-alive stopped by SIGINT exited %d:\n%s", code, k.output())
	}

	out = e.ok("", "lease", "list")
	if !strings.HasPrefix(out, "found 1 leases\n") || !strings.Contains(out, id+"\n") {
		t.Fatalf("lease list printed %q", out)
	}
	out = e.ok("", "-w", "table", "lease", "list")
	if !strings.Contains(out, "| LEASE ID         |") || !strings.Contains(out, "| "+id+" |") {
		t.Fatalf("lease list -w table printed:\n%s", out)
	}

	var grant struct {
		ID  int64
		TTL int64
	}
	out = e.ok("", "-w", "json", "lease", "grant", "7")
	if err := json.Unmarshal([]byte(out), &grant); err != nil || grant.ID == 0 || grant.TTL != 7 {
		t.Fatalf("lease grant -w json printed %q (%v)", out, err)
	}

	if out := e.ok("", "lease", "revoke", id); out != fmt.Sprintf("lease %s revoked\n", id) {
		t.Fatalf("lease revoke printed %q", out)
	}
	ctlExpect(t, e, "", "get", "leased")
	ctlExpect(t, e, fmt.Sprintf("lease %s already expired\n", id), "lease", "timetolive", id)
	e.fails(1, "lease not found", "lease", "revoke", id)
	e.fails(1, "expired or revoked", "lease", "keep-alive", id)
	e.fails(1, "lease not found", "put", "k", "v", "--lease", id)
}
