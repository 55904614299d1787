package e2e

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// restoreArgs are the arguments of `ensemble snapshot restore` for member i
// of spec.
func restoreArgs(file string, spec framework.ClusterSpec, i int) []string {
	m := spec.Members[i]
	return []string{"snapshot", "restore", file,
		"--name", m.Name,
		"--data-dir", m.DataDir,
		"--initial-cluster", spec.InitialCluster(),
		"--initial-cluster-token", spec.Token,
		"--initial-advertise-peer-urls", m.PeerURL,
	}
}

func allKeys(t *testing.T, cli *clientv3.Client) (map[string]*mvccpb.KeyValue, int64) {
	t.Helper()
	resp, err := cli.Get(framework.Ctx(t), "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = kv
	}
	return out, resp.Header.Revision
}

// TestSnapshotSaveAndRestoreIntoNewCluster saves a snapshot of a running
// three-member cluster with the real etcdctl, restores it into three new data
// directories and starts a new cluster on new ports from them: every key is
// there with its revisions, and the new cluster takes writes.
func TestSnapshotSaveAndRestoreIntoNewCluster(t *testing.T) {
	etcdctl := buildEtcdctl(t)
	old := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	cli := framework.NewClient(t, old.Spec.Endpoints()...)
	ctx := framework.Ctx(t)
	for i := range 300 {
		if _, err := cli.Put(ctx, fmt.Sprintf("r/%03d", i%120), fmt.Sprintf("v%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cli.Delete(ctx, "r/01", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("t/a", "1"), clientv3.OpPut("t/b", "2")).Commit(); err != nil {
		t.Fatal(err)
	}
	want, wantRev := allKeys(t, cli)

	// etcdctl checks the trailing checksum of what it saves.
	file := filepath.Join(t.TempDir(), "backup.db")
	saver := ctl{t: t, bin: etcdctl, endpoints: []string{old.Spec.Members[old.Leader(t)].ClientURL}}
	out := saver.ok("", "snapshot", "save", file)
	if !strings.Contains(out, "Snapshot saved at "+file) {
		t.Fatalf("etcdctl snapshot save said %q", out)
	}
	for i := range old.Procs {
		old.Kill(i)
	}

	// A damaged copy is refused before anything is written.
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if len(data)%512 != sha256.Size {
		t.Fatalf("saved snapshot of %d bytes has no trailing sha256", len(data))
	}
	data[len(data)/3] ^= 0x01
	damaged := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(damaged, data, 0o600); err != nil {
		t.Fatal(err)
	}
	fresh := framework.NewClusterSpec(t, 3, t.TempDir())
	_, errOut, code := runEnsemble(t, restoreArgs(damaged, fresh, 0)...)
	if code != 1 || !strings.Contains(errOut, "integrity check failed: sha256 mismatch") {
		t.Fatalf("restore of a damaged snapshot: exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(fresh.Members[0].DataDir); !os.IsNotExist(err) {
		t.Fatalf("restore of a damaged snapshot created the data dir: %v", err)
	}

	for i := range fresh.Members {
		stdout, errOut, code := runEnsemble(t, restoreArgs(file, fresh, i)...)
		if code != 0 {
			t.Fatalf("restore of member %d: exit %d\n%s%s", i, code, stdout, errOut)
		}
	}
	// Restoring over a member's data is refused.
	if _, errOut, code := runEnsemble(t, restoreArgs(file, fresh, 0)...); code != 1 || !strings.Contains(errOut, "not empty") {
		t.Fatalf("restore over existing data: exit %d, stderr %q", code, errOut)
	}

	restored := framework.StartProcesses(t, binary, fresh)
	restored.Leader(t)
	ncli := framework.NewClient(t, fresh.Endpoints()...)
	got, gotRev := allKeys(t, ncli)
	if gotRev != wantRev || len(got) != len(want) {
		t.Fatalf("restored cluster holds %d keys at revision %d, want %d at %d", len(got), gotRev, len(want), wantRev)
	}
	for k, w := range want {
		g := got[k]
		if g == nil || string(g.Value) != string(w.Value) || g.ModRevision != w.ModRevision ||
			g.CreateRevision != w.CreateRevision || g.Version != w.Version {
			t.Fatalf("key %s: restored %v, want %v", k, g, w)
		}
	}
	put, err := ncli.Put(framework.Ctx(t), "after-restore", "x")
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.Revision != wantRev+1 {
		t.Fatalf("first write after restore at revision %d, want %d", put.Header.Revision, wantRev+1)
	}
	// Every member of the new cluster holds the same history.
	var first uint32
	for i, ep := range fresh.Endpoints() {
		var h *clientv3.HashKVResponse
		deadline := time.Now().Add(10 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			h, err = ncli.HashKV(ctx, ep, put.Header.Revision)
			cancel()
			if err == nil || time.Now().After(deadline) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		if err != nil {
			t.Fatalf("hashkv on %s: %v", ep, err)
		}
		if i == 0 {
			first = h.Hash
		} else if h.Hash != first {
			t.Fatalf("member %d hash %x, member 0 %x", i, h.Hash, first)
		}
	}
}

func TestSnapshotRestoreUsageErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "missing.db")
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"snapshot"}, 2, "Usage"},
		{[]string{"snapshot", "save", "x"}, 2, `unknown command "save"`},
		{[]string{"snapshot", "restore"}, 2, "FILE must be the first argument"},
		{[]string{"snapshot", "restore", file, "--name", "m9", "--initial-cluster", "m1=http://127.0.0.1:2380"}, 2, "--name"},
		{[]string{"snapshot", "restore", file, "--data-dir", filepath.Join(t.TempDir(), "d")}, 1, "no such file"},
	}
	for _, c := range cases {
		out, errOut, code := runEnsemble(t, c.args...)
		if code != c.code || !strings.Contains(out+errOut, c.want) {
			t.Errorf("ensemble %q: exit %d, output %q%q; want exit %d mentioning %q", c.args, code, out, errOut, c.code, c.want)
		}
	}
	out, _, code := runEnsemble(t, "snapshot", "restore", "--help")
	if code != 0 || !strings.Contains(out, "--initial-cluster-state new") {
		t.Errorf("snapshot restore --help: exit %d, %q", code, out)
	}
}
