package e2e

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"ensemble/tests/framework"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// single starts one ensemble process with its own ports and data directory.
func single(t *testing.T, extra ...string) (*framework.ProcessCluster, framework.MemberSpec) {
	t.Helper()
	spec := framework.NewClusterSpec(t, 1, t.TempDir(), extra...)
	return framework.StartProcesses(t, binary, spec), spec.Members[0]
}

func TestSIGKILLUnderLoadLosesNoAcknowledgedWrite(t *testing.T) {
	// A small snapshot count makes the crash land among snapshots and log
	// compaction too.
	c, m := single(t, "--snapshot-count", "300")
	w := &writer{acked: map[string]string{}, attempted: map[string]string{}}
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			w.run(ctx, framework.NewClient(t, m.ClientURL), "k"+string(rune('a'+i)))
		}(i)
	}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		w.mu.Lock()
		n := len(w.acked)
		w.mu.Unlock()
		if n >= 1500 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c.Kill(0) // while the writers are still writing
	stop()
	wg.Wait()
	c.Restart(t, 0)
	for i := range 8 {
		w.checkMember(t, m.ClientURL, "k"+string(rune('a'+i)))
	}
	t.Logf("%d acknowledged writes survived SIGKILL", len(w.acked))
}

// walSegments lists a member's WAL segment files in order.
func walSegments(t *testing.T, dataDir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dataDir, "member", "wal", "*.wal"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no wal segments in %s: %v", dataDir, err)
	}
	sort.Strings(files)
	return files
}

// lastNonZero is the offset just past the last non-zero byte of b.
func lastNonZero(b []byte) int {
	for i := len(b) - 1; i >= 0; i-- {
		if b[i] != 0 {
			return i + 1
		}
	}
	return 0
}

func TestTornWALTailIsRepaired(t *testing.T) {
	c, m := single(t)
	cli := framework.NewClient(t, m.ClientURL)
	for i := range 20 {
		if _, err := cli.Put(framework.Ctx(t), "torn/"+string(rune('a'+i)), "v"); err != nil {
			t.Fatal(err)
		}
	}
	c.Kill(0)
	// Simulate a crash in the middle of appending a record: a header that
	// promises 4 KiB, the first bytes of it written, the rest never reached
	// the disk (still zero from preallocation).
	segs := walSegments(t, m.DataDir)
	last := segs[len(segs)-1]
	b, err := os.ReadFile(last)
	if err != nil {
		t.Fatal(err)
	}
	end := (lastNonZero(b) + 7) &^ 7
	torn := bytes.Repeat([]byte{0xab}, 100)
	torn[0], torn[1], torn[2], torn[3] = 0x00, 0x10, 0x00, 0x00 // a length of 4096 in either byte order's low bytes
	f, err := os.OpenFile(last, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(torn, int64(end)); err != nil {
		t.Fatal(err)
	}
	f.Close()

	c.Restart(t, 0)
	g, err := cli.Get(framework.Ctx(t), "torn/", clientOptsPrefix()...)
	if err != nil || g.Count != 20 {
		t.Fatalf("after repair: count %d, err %v", g.Count, err)
	}
	if !strings.Contains(strings.ToLower(c.Procs[0].Output()), "torn") {
		t.Errorf("the repair was not logged:\n%s", c.Procs[0].Output())
	}
	// And the repaired log keeps working across another restart.
	if _, err := cli.Put(framework.Ctx(t), "torn/after", "v"); err != nil {
		t.Fatal(err)
	}
	c.Kill(0)
	c.Restart(t, 0)
	if g, err := cli.Get(framework.Ctx(t), "torn/", clientOptsPrefix()...); err != nil || g.Count != 21 {
		t.Fatalf("after second restart: count %d, err %v", g.Count, err)
	}
}

func TestCorruptWALRecordRefusesToStart(t *testing.T) {
	c, m := single(t)
	cli := framework.NewClient(t, m.ClientURL)
	for i := range 50 {
		if _, err := cli.Put(framework.Ctx(t), "corrupt/"+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}
	c.Kill(0)
	segs := walSegments(t, m.DataDir)
	seg := segs[len(segs)-1]
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// Flip a byte of a value in the middle of the log (a run of 'v's).
	mid := bytes.Index(b[lastNonZero(b)/2:], bytes.Repeat([]byte("v"), 50)) + lastNonZero(b)/2 + 10
	b[mid] ^= 0x01
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p := c.Procs[0]
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	// It must exit by itself with an error that names the file and offset.
	deadline := time.Now().Add(20 * time.Second)
	for p.Running() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if p.Running() {
		t.Fatalf("member started on a corrupt WAL:\n%s", p.Output())
	}
	out := p.Output()
	if !strings.Contains(out, filepath.Base(seg)) || !strings.Contains(out, "offset") {
		t.Fatalf("error does not name the file and offset:\n%s", out)
	}
	after, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, b) {
		t.Fatalf("refusing to start still changed the WAL")
	}
}

func clientOptsPrefix() []clientv3.OpOption { return []clientv3.OpOption{clientv3.WithPrefix()} }
