// Package compat drives Ensemble with real third-party clients, here etcd's
// own go.etcd.io/etcd/client/v3, through every option of the KV API and every
// error it can return, on a single member and on a three-member cluster.
package compat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// clusters runs fn on a single member and on a three-member cluster; on the
// latter the client talks to a follower, so that every request crosses the
// cluster.
func clusters(t *testing.T, fn func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client)) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", size), func(t *testing.T) {
			c := framework.StartInProcess(t, size)
			lead := c.WaitLeader(t)
			target := (lead + 1) % size
			cli := framework.NewClient(t, c.Spec.Members[target].ClientURL)
			fn(t, c, cli)
		})
	}
}

func mustPut(t *testing.T, cli *clientv3.Client, k, v string, opts ...clientv3.OpOption) *clientv3.PutResponse {
	t.Helper()
	resp, err := cli.Put(framework.Ctx(t), k, v, opts...)
	if err != nil {
		t.Fatalf("put %q: %v", k, err)
	}
	return resp
}

func keys(resp *clientv3.GetResponse) string {
	var ks []string
	for _, kv := range resp.Kvs {
		ks = append(ks, string(kv.Key))
	}
	return strings.Join(ks, ",")
}

func TestKVPutGetHeaders(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		p1 := mustPut(t, cli, "h/a", "1")
		p2 := mustPut(t, cli, "h/a", "2")
		if p2.Header.Revision != p1.Header.Revision+1 {
			t.Fatalf("revisions %d then %d, want consecutive", p1.Header.Revision, p2.Header.Revision)
		}
		for _, h := range []*struct{ cid, mid, term uint64 }{{p2.Header.ClusterId, p2.Header.MemberId, p2.Header.RaftTerm}} {
			if h.cid == 0 || h.mid == 0 || h.term == 0 {
				t.Fatalf("header lacks cluster id, member id or term: %+v", p2.Header)
			}
		}
		g, err := cli.Get(ctx, "h/a")
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Kvs) != 1 || string(g.Kvs[0].Value) != "2" {
			t.Fatalf("get = %v", g.Kvs)
		}
		kv := g.Kvs[0]
		if kv.CreateRevision != p1.Header.Revision || kv.ModRevision != p2.Header.Revision || kv.Version != 2 {
			t.Fatalf("create/mod/version = %d/%d/%d, want %d/%d/2", kv.CreateRevision, kv.ModRevision, kv.Version, p1.Header.Revision, p2.Header.Revision)
		}
		if g.Header.Revision < p2.Header.Revision {
			t.Fatalf("read header revision %d below the write's %d", g.Header.Revision, p2.Header.Revision)
		}
		// A delete ends the key's life; a new put starts it again at version 1.
		if _, err := cli.Delete(ctx, "h/a"); err != nil {
			t.Fatal(err)
		}
		p3 := mustPut(t, cli, "h/a", "3")
		g, _ = cli.Get(ctx, "h/a")
		if g.Kvs[0].Version != 1 || g.Kvs[0].CreateRevision != p3.Header.Revision {
			t.Fatalf("re-created key: %+v", g.Kvs[0])
		}
	})
}

func TestKVRangeOptions(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		var revs []int64
		for i, k := range []string{"r/a", "r/b", "r/c", "r/d", "r/e"} {
			revs = append(revs, mustPut(t, cli, k, fmt.Sprintf("v%d", 5-i)).Header.Revision)
		}
		mustPut(t, cli, "r/c", "again") // r/c: version 2, highest mod revision
		mustPut(t, cli, "s/x", "outside")

		check := func(name string, want string, opts ...clientv3.OpOption) *clientv3.GetResponse {
			t.Helper()
			key := "r/"
			if name == "single" || name == "range" || name == "from-key" {
				key = "r/a"
			}
			resp, err := cli.Get(ctx, key, opts...)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if got := keys(resp); got != want {
				t.Fatalf("%s: keys %q, want %q", name, got, want)
			}
			return resp
		}
		check("single", "r/a")
		check("range", "r/a,r/b,r/c", clientv3.WithRange("r/d"))
		resp, err := cli.Get(ctx, "r/", clientv3.WithPrefix())
		if err != nil || keys(resp) != "r/a,r/b,r/c,r/d,r/e" || resp.Count != 5 {
			t.Fatalf("prefix: %q count %d err %v", keys(resp), resp.Count, err)
		}
		check("from-key", "r/a,r/b,r/c,r/d,r/e,s/x", clientv3.WithFromKey())
		r := check("limit", "r/a,r/b", clientv3.WithPrefix(), clientv3.WithLimit(2))
		if !r.More || r.Count != 5 {
			t.Fatalf("limit: more=%v count=%d, want true 5", r.More, r.Count)
		}
		r = check("limit not reached", "r/a,r/b,r/c,r/d,r/e", clientv3.WithPrefix(), clientv3.WithLimit(10))
		if r.More {
			t.Fatalf("more set with limit above count")
		}
		// An old revision shows the old value.
		old, err := cli.Get(ctx, "r/c", clientv3.WithRev(revs[2]))
		if err != nil || len(old.Kvs) != 1 || string(old.Kvs[0].Value) != "v3" {
			t.Fatalf("rev read: %v %v", old.Kvs, err)
		}
		before, _ := cli.Get(ctx, "r/", clientv3.WithPrefix(), clientv3.WithRev(revs[1]))
		if keys(before) != "r/a,r/b" {
			t.Fatalf("prefix at rev %d: %q", revs[1], keys(before))
		}
		check("sort key desc", "r/e,r/d,r/c,r/b,r/a", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend))
		check("sort value asc", "r/c,r/e,r/d,r/b,r/a", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByValue, clientv3.SortAscend))
		check("sort version desc", "r/c,r/a,r/b,r/d,r/e", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByVersion, clientv3.SortDescend))
		check("sort create desc", "r/e,r/d,r/c,r/b,r/a", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByCreateRevision, clientv3.SortDescend))
		check("sort mod desc", "r/c,r/e,r/d,r/b,r/a", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend))
		check("sort mod desc limit", "r/c,r/e", clientv3.WithPrefix(), clientv3.WithSort(clientv3.SortByModRevision, clientv3.SortDescend), clientv3.WithLimit(2))
		check("serializable", "r/a,r/b,r/c,r/d,r/e", clientv3.WithPrefix(), clientv3.WithSerializable())
		ko := check("keys only", "r/a,r/b,r/c,r/d,r/e", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		for _, kv := range ko.Kvs {
			if len(kv.Value) != 0 {
				t.Fatalf("keys-only returned value %q", kv.Value)
			}
		}
		co := check("count only", "", clientv3.WithPrefix(), clientv3.WithCountOnly())
		if co.Count != 5 {
			t.Fatalf("count only: %d", co.Count)
		}
		check("min mod rev", "r/c,r/d,r/e", clientv3.WithPrefix(), clientv3.WithMinModRev(revs[3]))
		check("max mod rev", "r/a,r/b", clientv3.WithPrefix(), clientv3.WithMaxModRev(revs[1]))
		check("min create rev", "r/d,r/e", clientv3.WithPrefix(), clientv3.WithMinCreateRev(revs[3]))
		check("max create rev", "r/a,r/b,r/c", clientv3.WithPrefix(), clientv3.WithMaxCreateRev(revs[2]))
	})
}

func TestKVPutOptions(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		mustPut(t, cli, "p/k", "one")
		pr := mustPut(t, cli, "p/k", "two", clientv3.WithPrevKV())
		if pr.PrevKv == nil || string(pr.PrevKv.Value) != "one" {
			t.Fatalf("prev kv = %v", pr.PrevKv)
		}
		if pr := mustPut(t, cli, "p/new", "x", clientv3.WithPrevKV()); pr.PrevKv != nil {
			t.Fatalf("prev kv of a new key = %v", pr.PrevKv)
		}
		// ignore_value keeps the value and bumps the version.
		mustPut(t, cli, "p/k", "", clientv3.WithIgnoreValue())
		g, _ := cli.Get(ctx, "p/k")
		if string(g.Kvs[0].Value) != "two" || g.Kvs[0].Version != 3 {
			t.Fatalf("after ignore_value: %+v", g.Kvs[0])
		}
		mustPut(t, cli, "p/k", "three", clientv3.WithIgnoreLease())
		g, _ = cli.Get(ctx, "p/k")
		if string(g.Kvs[0].Value) != "three" || g.Kvs[0].Lease != 0 {
			t.Fatalf("after ignore_lease: %+v", g.Kvs[0])
		}
		if _, err := cli.Put(ctx, "p/missing", "", clientv3.WithIgnoreValue()); !errors.Is(err, rpctypes.ErrKeyNotFound) {
			t.Fatalf("ignore_value on a missing key: %v, want %v", err, rpctypes.ErrKeyNotFound)
		}
		if _, err := cli.Put(ctx, "p/missing", "v", clientv3.WithIgnoreLease()); !errors.Is(err, rpctypes.ErrKeyNotFound) {
			t.Fatalf("ignore_lease on a missing key: %v, want %v", err, rpctypes.ErrKeyNotFound)
		}
		if _, err := cli.Put(ctx, "p/k", "v", clientv3.WithLease(12345)); !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			t.Fatalf("put with an unknown lease: %v, want %v", err, rpctypes.ErrLeaseNotFound)
		}
		if g, _ := cli.Get(ctx, "p/missing"); len(g.Kvs) != 0 {
			t.Fatalf("failed puts left a key behind: %v", g.Kvs)
		}
	})
}

func TestKVDeleteRange(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		for _, k := range []string{"d/a", "d/b", "d/c", "e/a"} {
			mustPut(t, cli, k, "v-"+k)
		}
		dr, err := cli.Delete(ctx, "d/a", clientv3.WithPrevKV())
		if err != nil || dr.Deleted != 1 || len(dr.PrevKvs) != 1 || string(dr.PrevKvs[0].Value) != "v-d/a" {
			t.Fatalf("delete one: %+v %v", dr, err)
		}
		dr, err = cli.Delete(ctx, "d/", clientv3.WithPrefix(), clientv3.WithPrevKV())
		if err != nil || dr.Deleted != 2 || len(dr.PrevKvs) != 2 {
			t.Fatalf("delete prefix: %+v %v", dr, err)
		}
		rev := dr.Header.Revision
		dr, err = cli.Delete(ctx, "d/", clientv3.WithPrefix())
		if err != nil || dr.Deleted != 0 {
			t.Fatalf("delete of nothing: %+v %v", dr, err)
		}
		if dr.Header.Revision != rev {
			t.Fatalf("deleting nothing moved the revision from %d to %d", rev, dr.Header.Revision)
		}
		if g, _ := cli.Get(ctx, "", clientv3.WithFromKey()); keys(g) != "e/a" {
			t.Fatalf("left: %q", keys(g))
		}
	})
}

func TestKVTxn(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		p := mustPut(t, cli, "t/k", "v1")
		cmps := map[string]clientv3.Cmp{
			"value":   clientv3.Compare(clientv3.Value("t/k"), "=", "v1"),
			"version": clientv3.Compare(clientv3.Version("t/k"), "=", 1),
			"create":  clientv3.Compare(clientv3.CreateRevision("t/k"), "=", p.Header.Revision),
			"mod":     clientv3.Compare(clientv3.ModRevision("t/k"), "<", p.Header.Revision+1),
			"lease":   clientv3.Compare(clientv3.LeaseValue("t/k"), "=", clientv3.NoLease),
			"greater": clientv3.Compare(clientv3.Value("t/k"), ">", "v0"),
			"not eq":  clientv3.Compare(clientv3.Value("t/k"), "!=", "zzz"),
			"missing": clientv3.Compare(clientv3.Version("t/none"), "=", 0),
		}
		for name, cmp := range cmps {
			r, err := cli.Txn(ctx).If(cmp).Then(clientv3.OpGet("t/k")).Else(clientv3.OpPut("t/else", name)).Commit()
			if err != nil || !r.Succeeded {
				t.Fatalf("compare %s: succeeded=%v err=%v", name, r != nil && r.Succeeded, err)
			}
		}
		// Failure branch, and a txn is one revision.
		r, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Value("t/k"), "=", "nope")).
			Then(clientv3.OpPut("t/x", "no")).
			Else(clientv3.OpPut("t/a", "1"), clientv3.OpPut("t/b", "2"), clientv3.OpDelete("t/k"), clientv3.OpGet("t/a")).Commit()
		if err != nil || r.Succeeded {
			t.Fatalf("failure branch: %+v %v", r, err)
		}
		if got := r.Responses[3].GetResponseRange(); got == nil || len(got.Kvs) != 1 || string(got.Kvs[0].Value) != "1" {
			t.Fatalf("a get inside the txn does not see the txn's own put: %v", got)
		}
		g, _ := cli.Get(ctx, "t/", clientv3.WithPrefix())
		for _, kv := range g.Kvs {
			if (string(kv.Key) == "t/a" || string(kv.Key) == "t/b") && kv.ModRevision != r.Header.Revision {
				t.Fatalf("%s has mod revision %d, txn revision %d", kv.Key, kv.ModRevision, r.Header.Revision)
			}
			if string(kv.Key) == "t/k" || string(kv.Key) == "t/x" {
				t.Fatalf("unexpected key %s after txn", kv.Key)
			}
		}
		// Nested txn.
		r, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("t/a"), ">", 0)).
			Then(clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value("t/b"), "=", "2")},
				[]clientv3.Op{clientv3.OpPut("t/nested", "yes")}, nil)).Commit()
		if err != nil || !r.Succeeded || !r.Responses[0].GetResponseTxn().Succeeded {
			t.Fatalf("nested txn: %+v %v", r, err)
		}
		if g, _ := cli.Get(ctx, "t/nested"); len(g.Kvs) != 1 {
			t.Fatalf("nested put missing")
		}
		// A read-only txn is served without a log entry and sees one revision.
		before, _ := cli.Get(ctx, "t/a")
		r, err = cli.Txn(ctx).Then(clientv3.OpGet("t/a"), clientv3.OpGet("t/b")).Commit()
		if err != nil || r.Header.Revision != before.Header.Revision {
			t.Fatalf("read-only txn: rev %d vs %d, %v", r.Header.Revision, before.Header.Revision, err)
		}
		// Range compare: every key in the range must match.
		r, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("t/").WithPrefix(), ">", 0)).Commit()
		if err != nil || !r.Succeeded {
			t.Fatalf("range compare: %v %v", r, err)
		}
	})
}

func TestKVCompaction(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		var revs []int64
		for i := range 5 {
			revs = append(revs, mustPut(t, cli, "c/k", fmt.Sprint(i)).Header.Revision)
		}
		if _, err := cli.Compact(ctx, revs[3], clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		if _, err := cli.Get(ctx, "c/k", clientv3.WithRev(revs[1])); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("read below compaction: %v, want %v", err, rpctypes.ErrCompacted)
		}
		g, err := cli.Get(ctx, "c/k", clientv3.WithRev(revs[3]))
		if err != nil || string(g.Kvs[0].Value) != "3" {
			t.Fatalf("read at compaction: %v %v", g, err)
		}
		if _, err := cli.Compact(ctx, revs[2]); !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("compact below compaction: %v", err)
		}
		if _, err := cli.Get(ctx, "c/k", clientv3.WithRev(revs[4]+1000)); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("future read: %v, want %v", err, rpctypes.ErrFutureRev)
		}
		if _, err := cli.Compact(ctx, revs[4]+1000); !errors.Is(err, rpctypes.ErrFutureRev) {
			t.Fatalf("future compact: %v, want %v", err, rpctypes.ErrFutureRev)
		}
		// Inside a txn the same errors, and nothing of the txn applied.
		_, err = cli.Txn(ctx).Then(clientv3.OpPut("c/txn", "x"), clientv3.OpGet("c/k", clientv3.WithRev(revs[0]))).Commit()
		if !errors.Is(err, rpctypes.ErrCompacted) {
			t.Fatalf("txn reading below compaction: %v", err)
		}
		if g, _ := cli.Get(ctx, "c/txn"); len(g.Kvs) != 0 {
			t.Fatalf("failed txn was half applied")
		}
	})
}

func TestKVBinaryKeysAndValues(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := framework.Ctx(t)
		ks := []string{"\x00", "\x00\x00", "b\x00in", "\xff", "\xff\xff", "\xfe\x00\xff"}
		for _, k := range ks {
			v := k + "\x00value\xff"
			mustPut(t, cli, k, v)
			g, err := cli.Get(ctx, k)
			if err != nil || len(g.Kvs) != 1 || !bytes.Equal(g.Kvs[0].Value, []byte(v)) {
				t.Fatalf("key %q: %v %v", k, g, err)
			}
		}
		all, err := cli.Get(ctx, "\x00", clientv3.WithFromKey())
		if err != nil || int(all.Count) < len(ks) {
			t.Fatalf("from \\x00: count %d err %v", all.Count, err)
		}
		ff, err := cli.Get(ctx, "\xff", clientv3.WithPrefix())
		if err != nil || ff.Count != 2 {
			t.Fatalf("prefix \\xff: count %d err %v", ff.Count, err)
		}
	})
}

func TestKVErrors(t *testing.T) {
	for _, size := range []int{1, 3} {
		t.Run(fmt.Sprintf("members=%d", size), func(t *testing.T) {
			c := framework.StartInProcess(t, size, "--max-request-bytes", "4096", "--max-txn-ops", "4")
			cli := framework.NewClient(t, c.Spec.Members[(c.WaitLeader(t)+1)%size].ClientURL)
			ctx := framework.Ctx(t)
			expect := func(name string, err, want error) {
				t.Helper()
				if !errors.Is(err, want) {
					t.Fatalf("%s: got %v, want %v", name, err, want)
				}
			}
			_, err := cli.Put(ctx, "", "v")
			expect("put empty key", err, rpctypes.ErrEmptyKey)
			_, err = cli.Get(ctx, "")
			expect("get empty key", err, rpctypes.ErrEmptyKey)
			_, err = cli.Delete(ctx, "")
			expect("delete empty key", err, rpctypes.ErrEmptyKey)
			_, err = cli.Put(ctx, "big", strings.Repeat("x", 5000))
			expect("put over max-request-bytes", err, rpctypes.ErrRequestTooLarge)
			_, err = cli.Put(ctx, "huge", strings.Repeat("x", 600*1024))
			if status.Code(err) != codes.ResourceExhausted {
				t.Fatalf("put far over the limit: %v, want ResourceExhausted", err)
			}
			ops := []clientv3.Op{}
			for i := range 5 {
				ops = append(ops, clientv3.OpPut(fmt.Sprint("op", i), "v"))
			}
			_, err = cli.Txn(ctx).Then(ops...).Commit()
			expect("txn over max-txn-ops", err, rpctypes.ErrTooManyOps)
			_, err = cli.Txn(ctx).Then(clientv3.OpPut("dup", "1"), clientv3.OpPut("dup", "2")).Commit()
			expect("same key twice in a txn", err, rpctypes.ErrDuplicateKey)
			_, err = cli.Txn(ctx).Then(clientv3.OpPut("dup/a", "1"), clientv3.OpDelete("dup/", clientv3.WithPrefix())).Commit()
			expect("put and delete of one key in a txn", err, rpctypes.ErrDuplicateKey)
			for _, k := range []string{"big", "huge", "op0", "dup", "dup/a"} {
				if g, _ := cli.Get(ctx, k); len(g.Kvs) != 0 {
					t.Fatalf("refused request left %q behind", k)
				}
			}
			if size == 1 {
				return
			}
			// Without quorum, a write fails with an error before its deadline
			// instead of hanging.
			for i := range c.Spec.Members {
				if fmt.Sprint(c.Spec.Members[i].ClientURL) != cli.Endpoints()[0] {
					c.Stop(i)
				}
			}
			wctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			start := time.Now()
			_, err = cli.Put(wctx, "noquorum", "v")
			if err == nil {
				t.Fatalf("write without quorum succeeded")
			}
			if !errors.Is(err, rpctypes.ErrNoLeader) && !errors.Is(err, rpctypes.ErrTimeout) {
				t.Fatalf("write without quorum: %v, want no leader or timeout", err)
			}
			if time.Since(start) > 7*time.Second {
				t.Fatalf("write without quorum took %v", time.Since(start))
			}
		})
	}
}

func TestClusterAndMaintenance(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	ctx := framework.Ctx(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		ml, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		ok := len(ml.Members) == 3
		for _, m := range ml.Members {
			ok = ok && len(m.ClientURLs) == 1 && len(m.PeerURLs) == 1 && m.Name != ""
		}
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member list never showed every member's name and URLs: %+v", ml.Members)
		}
		time.Sleep(20 * time.Millisecond)
	}
	lead := c.WaitLeader(t)
	for i, ep := range c.Spec.Endpoints() {
		st, err := cli.Status(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		if st.Leader != uint64(c.Member(lead).Server.ID()) || st.RaftTerm == 0 || st.RaftIndex == 0 || st.DbSize == 0 || st.Version == "" {
			t.Fatalf("status of member %d: %+v", i, st)
		}
	}
}
