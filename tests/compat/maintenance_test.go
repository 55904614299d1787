package compat

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/internal/backend"
	"ensemble/internal/mvcc"
	"ensemble/tests/framework"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestMaintenanceStatus(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		mustPut(t, cli, "s/k", "v")
		ep := cli.Endpoints()[0]
		st, err := cli.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		lead := c.Member(c.WaitLeader(t)).Server.ID()
		switch {
		case st.Version != "3.6.0":
			t.Errorf("version %q", st.Version)
		case st.DbSize <= 0 || st.DbSizeInUse <= 0 || st.DbSizeInUse > st.DbSize:
			t.Errorf("db size %d, in use %d", st.DbSize, st.DbSizeInUse)
		case st.Leader != uint64(lead):
			t.Errorf("leader %x, want %x", st.Leader, lead)
		case st.RaftIndex == 0 || st.RaftAppliedIndex == 0 || st.RaftTerm == 0:
			t.Errorf("raft index %d, applied %d, term %d", st.RaftIndex, st.RaftAppliedIndex, st.RaftTerm)
		case st.DbSizeQuota != 8<<30:
			t.Errorf("quota %d, want the default 8 GiB", st.DbSizeQuota)
		case st.IsLearner:
			t.Errorf("a voter reports itself a learner")
		case len(st.Errors) != 0:
			t.Errorf("errors %q on a healthy cluster", st.Errors)
		case st.Header.Revision < 2:
			t.Errorf("header revision %d", st.Header.Revision)
		}
	})
}

// fillUntilNoSpace writes 8 KiB values until the member refuses with
// etcd's NOSPACE error, and returns how many writes succeeded.
func fillUntilNoSpace(t *testing.T, cli *clientv3.Client) int {
	t.Helper()
	val := strings.Repeat("x", 8<<10)
	for i := range 2000 {
		_, err := cli.Put(framework.Ctx(t), fmt.Sprintf("fill/%05d", i), val)
		if errors.Is(err, rpctypes.ErrNoSpace) {
			return i
		}
		if err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	t.Fatalf("2000 writes of 8 KiB did not exceed a 1 MiB quota")
	return 0
}

func TestNoSpaceAlarm(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", size), func(t *testing.T) {
			c := framework.StartInProcess(t, size, "--quota-backend-bytes", fmt.Sprint(1<<20))
			lead := c.WaitLeader(t)
			target := (lead + 1) % size
			cli := framework.NewClient(t, c.Spec.Members[target].ClientURL)
			ctx := framework.Ctx(t)
			mustPut(t, cli, "keep", "kept")
			if n := fillUntilNoSpace(t, cli); n < 10 {
				t.Fatalf("only %d writes fit in 1 MiB", n)
			}

			// The alarm is replicated: every member lists it and refuses
			// writes, whatever its own size.
			self := uint64(c.Member(target).Server.ID())
			for i := range size {
				mcli := framework.NewClient(t, c.Spec.Members[i].ClientURL)
				alarms, err := mcli.AlarmList(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != pb.AlarmType_NOSPACE || alarms.Alarms[0].MemberID != self {
					t.Fatalf("member %d lists alarms %v, want NOSPACE of %x", i, alarms.Alarms, self)
				}
				st, err := mcli.Status(ctx, c.Spec.Members[i].ClientURL)
				if err != nil {
					t.Fatal(err)
				}
				if want := fmt.Sprintf("memberID:%d alarm:NOSPACE ", self); len(st.Errors) != 1 || st.Errors[0] != want {
					t.Fatalf("member %d status errors %q, want %q", i, st.Errors, want)
				}
			}
			// (Each member whose own database is past the quota raises its
			// own alarm as well when it refuses a write.)
			for i := range size {
				mcli := framework.NewClient(t, c.Spec.Members[i].ClientURL)
				if _, err := mcli.Put(ctx, "more", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
					t.Fatalf("put through member %d under NOSPACE: %v, want %v", i, err, rpctypes.ErrNoSpace)
				}
			}
			putTxn := cli.Txn(ctx).Then(clientv3.OpPut("more", "v"))
			if _, err := putTxn.Commit(); !errors.Is(err, rpctypes.ErrNoSpace) {
				t.Fatalf("txn with a put under NOSPACE: %v, want %v", err, rpctypes.ErrNoSpace)
			}
			nested := cli.Txn(ctx).Then(clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpPut("more", "v")}, nil))
			if _, err := nested.Commit(); !errors.Is(err, rpctypes.ErrNoSpace) {
				t.Fatalf("nested txn with a put under NOSPACE: %v, want %v", err, rpctypes.ErrNoSpace)
			}
			if _, err := cli.Grant(ctx, 60); !errors.Is(err, rpctypes.ErrNoSpace) {
				t.Fatalf("lease grant under NOSPACE: %v, want %v", err, rpctypes.ErrNoSpace)
			}

			// Reads, deletes, txns without puts and compaction still work.
			if g, err := cli.Get(ctx, "keep"); err != nil || len(g.Kvs) != 1 {
				t.Fatalf("get under NOSPACE: %v %v", g, err)
			}
			if _, err := cli.Txn(ctx).Then(clientv3.OpGet("keep"), clientv3.OpDelete("fill/00000")).Commit(); err != nil {
				t.Fatalf("txn with a get and a delete under NOSPACE: %v", err)
			}
			del, err := cli.Delete(ctx, "fill/", clientv3.WithPrefix())
			if err != nil || del.Deleted == 0 {
				t.Fatalf("delete under NOSPACE: %v %v", del, err)
			}
			if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
				t.Fatalf("compact under NOSPACE: %v", err)
			}
			for i := range size {
				ep := c.Spec.Members[i].ClientURL
				before, err := cli.Status(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := cli.Defragment(ctx, ep); err != nil {
					t.Fatalf("defragment %s under NOSPACE: %v", ep, err)
				}
				after, err := cli.Status(ctx, ep)
				if err != nil {
					t.Fatal(err)
				}
				if after.DbSize >= before.DbSize || after.DbSize >= 1<<20 {
					t.Fatalf("member %d: db size %d before defragment, %d after", i, before.DbSize, after.DbSize)
				}
			}
			// Still refused until disarmed.
			if _, err := cli.Put(ctx, "more", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
				t.Fatalf("put before disarm: %v, want %v", err, rpctypes.ErrNoSpace)
			}
			disarmed, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{})
			if err != nil {
				t.Fatal(err)
			}
			if len(disarmed.Alarms) == 0 || disarmed.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
				t.Fatalf("disarm answered %v", disarmed.Alarms)
			}
			if alarms, err := cli.AlarmList(ctx); err != nil || len(alarms.Alarms) != 0 {
				t.Fatalf("alarms after disarm: %v %v", alarms, err)
			}
			mustPut(t, cli, "more", "v")
			if g, err := cli.Get(ctx, "keep"); err != nil || string(g.Kvs[0].Value) != "kept" {
				t.Fatalf("get after disarm: %v %v", g, err)
			}
		})
	}
}

// The alarm is in the database: a restarted member still refuses writes.
func TestNoSpaceAlarmSurvivesRestart(t *testing.T) {
	c := framework.StartInProcess(t, 1, "--quota-backend-bytes", fmt.Sprint(1<<20))
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	fillUntilNoSpace(t, cli)
	c.Stop(0)
	c.Restart(t, 0)
	c.WaitLeader(t)
	cli = framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ctx := framework.Ctx(t)
	alarms, err := cli.AlarmList(ctx)
	if err != nil || len(alarms.Alarms) != 1 {
		t.Fatalf("alarms after restart: %v %v", alarms, err)
	}
	if _, err := cli.Delete(ctx, "fill/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	// The deletes freed space, so the quota check passes, but the alarm
	// still refuses the write at apply time.
	if _, err := cli.Put(ctx, "k", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put after restart: %v, want %v", err, rpctypes.ErrNoSpace)
	}
}

// hashKVAll asks every member for HashKV at rev, retrying a member that has
// not applied rev yet.
func hashKVAll(t *testing.T, c *framework.InProcessCluster, rev int64) []*clientv3.HashKVResponse {
	t.Helper()
	var out []*clientv3.HashKVResponse
	for i := range c.Spec.Members {
		ep := c.Spec.Members[i].ClientURL
		cli := framework.NewClient(t, ep)
		deadline := time.Now().Add(10 * time.Second)
		for {
			h, err := cli.HashKV(framework.Ctx(t), ep, rev)
			if err == nil {
				out = append(out, h)
				break
			}
			if !errors.Is(err, rpctypes.ErrFutureRev) || time.Now().After(deadline) {
				t.Fatalf("hashkv %d on %s: %v", rev, ep, err)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}

func TestHashKVEqualOnEveryMember(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	ctx := framework.Ctx(t)
	var revs []int64
	for i := range 200 {
		r := mustPut(t, cli, fmt.Sprintf("h/%03d", i%50), fmt.Sprint(i))
		revs = append(revs, r.Header.Revision)
	}
	if _, err := cli.Delete(ctx, "h/01", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	last := mustPut(t, cli, "h/last", "x").Header.Revision

	check := func(rev int64) uint32 {
		t.Helper()
		hs := hashKVAll(t, c, rev)
		for i, h := range hs {
			if h.Hash != hs[0].Hash || h.HashRevision != hs[0].HashRevision || h.CompactRevision != hs[0].CompactRevision {
				t.Fatalf("rev %d: member %d hash %x/%d/%d, member 0 %x/%d/%d", rev, i,
					h.Hash, h.HashRevision, h.CompactRevision, hs[0].Hash, hs[0].HashRevision, hs[0].CompactRevision)
			}
		}
		if rev > 0 && hs[0].HashRevision != rev {
			t.Fatalf("hash revision %d, want %d", hs[0].HashRevision, rev)
		}
		return hs[0].Hash
	}
	hMid, hLast := check(revs[100]), check(last)
	if hMid == hLast {
		t.Fatalf("hashes at revisions %d and %d are equal", revs[100], last)
	}
	if again := check(revs[100]); again != hMid {
		t.Fatalf("hash at %d changed from %x to %x with no compaction", revs[100], hMid, again)
	}

	// Right after a compaction, members that have and have not yet removed
	// the old revisions from disk agree.
	if _, err := cli.Compact(ctx, revs[150]); err != nil {
		t.Fatal(err)
	}
	check(revs[150])
	check(last)
	h, err := cli.HashKV(ctx, c.Spec.Members[0].ClientURL, revs[10])
	if !errors.Is(err, rpctypes.ErrCompacted) {
		t.Fatalf("hashkv below the compaction: %v %v, want %v", h, err, rpctypes.ErrCompacted)
	}
	if _, err := cli.HashKV(ctx, c.Spec.Members[0].ClientURL, last+1000); !errors.Is(err, rpctypes.ErrFutureRev) {
		t.Fatalf("hashkv of a future revision: %v, want %v", err, rpctypes.ErrFutureRev)
	}
	whole, err := cli.HashKV(ctx, c.Spec.Members[0].ClientURL, 0)
	if err != nil || whole.HashRevision != whole.Header.Revision || whole.CompactRevision != revs[150] {
		t.Fatalf("hashkv of the current revision: %+v %v", whole, err)
	}

	// The whole-database hash answers with the revision it was taken at.
	mh, err := pb.NewMaintenanceClient(framework.NewClient(t, c.Spec.Members[0].ClientURL).ActiveConnection()).Hash(ctx, &pb.HashRequest{})
	if err != nil || mh.Hash == 0 || mh.Header.Revision < last {
		t.Fatalf("hash: %+v %v", mh, err)
	}
}

func TestDefragmentShrinksAndReadsContinue(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	ep := c.Spec.Members[0].ClientURL
	cli := framework.NewClient(t, ep)
	ctx := framework.Ctx(t)
	val := strings.Repeat("v", 1024)
	ops := make([]clientv3.Op, 0, 100)
	for i := range 100 {
		ops = ops[:0]
		for j := range 100 {
			ops = append(ops, clientv3.OpPut(fmt.Sprintf("d/%02d/%03d", i, j), val))
		}
		if _, err := cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			t.Fatal(err)
		}
	}
	mustPut(t, cli, "stay", "here")
	del, err := cli.Delete(ctx, "d/", clientv3.WithPrefix())
	if err != nil || del.Deleted != 10000 {
		t.Fatalf("delete: %v %v", del, err)
	}
	if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	before, err := cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}

	var (
		stop     atomic.Bool
		reads    atomic.Int64
		wg       sync.WaitGroup
		readErrs = make(chan error, 8)
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				g, err := cli.Get(ctx, "stay", clientv3.WithSerializable())
				if err == nil && (len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "here") {
					err = fmt.Errorf("read %v", g.Kvs)
				}
				if err != nil {
					readErrs <- err
					return
				}
				reads.Add(1)
			}
		}()
	}
	// Readers are running before the defragmentation starts.
	for reads.Load() < 10 {
		time.Sleep(time.Millisecond)
	}
	start, began := reads.Load(), time.Now()
	if _, err := cli.Defragment(ctx, ep); err != nil {
		t.Fatal(err)
	}
	took := time.Since(began)
	during := reads.Load() - start
	stop.Store(true)
	wg.Wait()
	close(readErrs)
	for err := range readErrs {
		t.Fatalf("read during defragment: %v", err)
	}
	after, err := cli.Status(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("db size %d before defragment, %d after; took %v, %d reads served meanwhile", before.DbSize, after.DbSize, took, during)
	if after.DbSize > before.DbSize/4 {
		t.Fatalf("db size %d before defragment, %d after", before.DbSize, after.DbSize)
	}
	// Writes and reads go on with the new file.
	mustPut(t, cli, "after", "defrag")
	if g, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || g.Count != 2 {
		t.Fatalf("count after defragment: %v %v", g, err)
	}
}

func TestSnapshotSaveVerifies(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		var last int64
		for i := range 300 {
			last = mustPut(t, cli, fmt.Sprintf("snap/%03d", i), strings.Repeat("s", i)).Header.Revision
		}
		resp, err := cli.SnapshotWithVersion(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Snapshot.Close()
		if resp.Version != "3.6.0" {
			t.Errorf("snapshot version %q", resp.Version)
		}
		data, err := io.ReadAll(resp.Snapshot)
		if err != nil {
			t.Fatal(err)
		}
		// What etcdctl snapshot save and etcdutl snapshot restore check: a
		// database of whole 512-byte sectors followed by its SHA-256.
		if len(data)%512 != sha256.Size {
			t.Fatalf("snapshot of %d bytes has no trailing sha256", len(data))
		}
		db, sum := data[:len(data)-sha256.Size], data[len(data)-sha256.Size:]
		if got := sha256.Sum256(db); !bytes.Equal(got[:], sum) {
			t.Fatalf("snapshot sha256 %x, trailer %x", got, sum)
		}
		path := filepath.Join(t.TempDir(), "db")
		if err := os.WriteFile(path, db, 0o600); err != nil {
			t.Fatal(err)
		}
		be, err := backend.Open(backend.Options{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		defer be.Close()
		kv, err := mvcc.Open(be, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer kv.Close()
		rr, err := kv.Range([]byte("snap/"), []byte("snap0"), mvcc.RangeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rr.Count != 300 || kv.Rev() < last {
			t.Fatalf("snapshot holds %d keys at revision %d, want 300 at >= %d", rr.Count, kv.Rev(), last)
		}
	})
}

func TestMoveLeader(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	lead := c.WaitLeader(t)
	follower, other := (lead+1)%3, (lead+2)%3
	ctx := framework.Ctx(t)
	leadCli := framework.NewClient(t, c.Spec.Members[lead].ClientURL)
	followerCli := framework.NewClient(t, c.Spec.Members[follower].ClientURL)
	target := uint64(c.Member(other).Server.ID())

	if _, err := followerCli.MoveLeader(ctx, target); !errors.Is(err, rpctypes.ErrNotLeader) {
		t.Fatalf("move leader through a follower: %v, want %v", err, rpctypes.ErrNotLeader)
	}
	if _, err := leadCli.MoveLeader(ctx, 12345); !errors.Is(err, rpctypes.ErrBadLeaderTransferee) {
		t.Fatalf("move leader to an unknown member: %v, want %v", err, rpctypes.ErrBadLeaderTransferee)
	}
	learnerURL := fmt.Sprintf("http://127.0.0.1:%d", framework.FreePorts(t, 1)[0])
	added, err := leadCli.MemberAddAsLearner(ctx, []string{learnerURL})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := leadCli.MoveLeader(ctx, added.Member.ID); !errors.Is(err, rpctypes.ErrBadLeaderTransferee) {
		t.Fatalf("move leader to a learner: %v, want %v", err, rpctypes.ErrBadLeaderTransferee)
	}
	if _, err := leadCli.MemberRemove(ctx, added.Member.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := leadCli.MoveLeader(ctx, target); err != nil {
		t.Fatalf("move leader: %v", err)
	}
	if got := c.Member(lead).Server.Leader(); uint64(got) != target {
		t.Fatalf("old leader sees %x leading, want %x", got, target)
	}
	if now := c.WaitLeader(t); now != other {
		t.Fatalf("member %d leads, want %d", now, other)
	}
	mustPut(t, leadCli, "after-move", "v")
}
