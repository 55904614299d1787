package compat

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"ensemble/tests/framework"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"
)

// watchCtx bounds a watch to the test step and cancels it at the end.
func watchCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// collect reads events from wch until n arrived, failing on a closed
// channel, an error or a timeout.
func collect(t *testing.T, wch clientv3.WatchChan, n int) []*clientv3.Event {
	t.Helper()
	var evs []*clientv3.Event
	timeout := time.After(15 * time.Second)
	for len(evs) < n {
		select {
		case resp, ok := <-wch:
			if !ok {
				t.Fatalf("watch closed after %d of %d events", len(evs), n)
			}
			if err := resp.Err(); err != nil {
				t.Fatalf("watch failed after %d of %d events: %v", len(evs), n, err)
			}
			evs = append(evs, resp.Events...)
		case <-timeout:
			t.Fatalf("only %d of %d events within 15s", len(evs), n)
		}
	}
	return evs
}

func describe(evs []*clientv3.Event) string {
	var s []string
	for _, ev := range evs {
		d := fmt.Sprintf("%s %s", ev.Type, ev.Kv.Key)
		if ev.Type == mvccpb.PUT {
			d += "=" + string(ev.Kv.Value)
		}
		if ev.PrevKv != nil {
			d += " prev=" + string(ev.PrevKv.Value)
		}
		s = append(s, d)
	}
	return strings.Join(s, ", ")
}

func TestWatchOptions(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := watchCtx(t)
		start := mustPut(t, cli, "w/a", "0").Header.Revision
		key := cli.Watch(ctx, "w/a")
		rng := cli.Watch(ctx, "w/a", clientv3.WithRange("w/c"))
		prefix := cli.Watch(ctx, "w/", clientv3.WithPrefix())
		fromKey := cli.Watch(ctx, "w/b", clientv3.WithFromKey())
		past := cli.Watch(ctx, "w/a", clientv3.WithRev(start))
		prev := cli.Watch(ctx, "w/a", clientv3.WithPrevKV())
		noPut := cli.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithFilterPut())
		noDel := cli.Watch(ctx, "w/", clientv3.WithPrefix(), clientv3.WithFilterDelete())
		created := cli.Watch(ctx, "w/a", clientv3.WithCreatedNotify())
		if r := <-created; !r.Created || r.Header.Revision < start {
			t.Fatalf("created notification %+v", r)
		}

		mustPut(t, cli, "w/a", "1")
		mustPut(t, cli, "w/b", "2")
		mustPut(t, cli, "w/d", "3")
		mustPut(t, cli, "x", "4")
		if _, err := cli.Delete(framework.Ctx(t), "w/a"); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			wch  clientv3.WatchChan
			want string
		}{
			{"key", key, "PUT w/a=1, DELETE w/a"},
			{"range", rng, "PUT w/a=1, PUT w/b=2, DELETE w/a"},
			{"prefix", prefix, "PUT w/a=1, PUT w/b=2, PUT w/d=3, DELETE w/a"},
			{"from-key", fromKey, "PUT w/b=2, PUT w/d=3, PUT x=4"},
			{"start revision", past, "PUT w/a=0, PUT w/a=1, DELETE w/a"},
			{"prev_kv", prev, "PUT w/a=1 prev=0, DELETE w/a prev=1"},
			{"no put", noPut, "DELETE w/a"},
			{"no delete", noDel, "PUT w/a=1, PUT w/b=2, PUT w/d=3"},
			{"created notify", created, "PUT w/a=1, DELETE w/a"},
		} {
			n := strings.Count(tc.want, ",") + 1
			if got := describe(collect(t, tc.wch, n)); got != tc.want {
				t.Errorf("%s watch: %s, want %s", tc.name, got, tc.want)
			}
		}
	})
}

func TestWatchTxnEventsArriveTogether(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := watchCtx(t)
		wch := cli.Watch(ctx, "t/", clientv3.WithPrefix())
		mustPut(t, cli, "t/x", "0")
		<-wch
		resp, err := cli.Txn(framework.Ctx(t)).Then(
			clientv3.OpPut("t/a", "1"), clientv3.OpPut("t/b", "2"), clientv3.OpDelete("t/x"), clientv3.OpPut("other", "3"),
		).Commit()
		if err != nil {
			t.Fatal(err)
		}
		r := <-wch
		if len(r.Events) != 3 || describe(r.Events) != "PUT t/a=1, PUT t/b=2, DELETE t/x" {
			t.Fatalf("txn events in one response: %s", describe(r.Events))
		}
		for _, ev := range r.Events {
			if ev.Kv.ModRevision != resp.Header.Revision {
				t.Fatalf("event at %d, txn at %d", ev.Kv.ModRevision, resp.Header.Revision)
			}
		}
	})
}

func TestWatchCompacted(t *testing.T) {
	clusters(t, func(t *testing.T, c *framework.InProcessCluster, cli *clientv3.Client) {
		ctx := watchCtx(t)
		first := mustPut(t, cli, "cp", "0").Header.Revision
		for i := 1; i < 10; i++ {
			mustPut(t, cli, "cp", fmt.Sprint(i))
		}
		compactAt := first + 5
		if _, err := cli.Compact(framework.Ctx(t), compactAt); err != nil {
			t.Fatal(err)
		}
		for _, from := range []int64{first, compactAt - 1} {
			wch := cli.Watch(ctx, "cp", clientv3.WithRev(from))
			r, ok := <-wch
			if !ok || r.CompactRevision != compactAt || !errors.Is(r.Err(), rpctypes.ErrCompacted) || !r.Canceled {
				t.Fatalf("watch from %d after compaction at %d: %+v err=%v", from, compactAt, r, r.Err())
			}
			if _, ok := <-wch; ok {
				t.Fatalf("watch from %d not closed after the compaction response", from)
			}
		}
		// Restarting from the reported compact revision works, as in etcd,
		// so clients that do so do not loop.
		evs := collect(t, cli.Watch(ctx, "cp", clientv3.WithRev(compactAt)), 5)
		if evs[0].Kv.ModRevision != compactAt || string(evs[4].Kv.Value) != "9" {
			t.Fatalf("watch from the compaction revision: %s", describe(evs))
		}
	})
}

func TestWatchCancelAndSharedStream(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ctx := watchCtx(t)
	// Watches made with the same context share one gRPC stream.
	var chans []clientv3.WatchChan
	for i := range 5 {
		chans = append(chans, cli.Watch(ctx, fmt.Sprintf("s/%d", i)))
	}
	cctx, cancel := context.WithCancel(ctx)
	canceled := cli.Watch(cctx, "s/0")
	for i := range 5 {
		mustPut(t, cli, fmt.Sprintf("s/%d", i), "v")
	}
	for i, wch := range chans {
		if evs := collect(t, wch, 1); string(evs[0].Kv.Key) != fmt.Sprintf("s/%d", i) {
			t.Fatalf("watch %d got %s", i, describe(evs))
		}
	}
	collect(t, canceled, 1)
	cancel()
	for range canceled {
	}
	mustPut(t, cli, "s/0", "again")
	if evs := collect(t, chans[0], 1); string(evs[0].Kv.Value) != "again" {
		t.Fatalf("after a cancel on the stream: %s", describe(evs))
	}
}

// rawStream opens a Watch stream without clientv3, to see the wire.
func rawStream(t *testing.T, cli *clientv3.Client) pb.Watch_WatchClient {
	t.Helper()
	ws, err := pb.NewWatchClient(cli.ActiveConnection()).Watch(watchCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return ws
}

func recv(t *testing.T, ws pb.Watch_WatchClient) *pb.WatchResponse {
	t.Helper()
	r, err := ws.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func createReq(c *pb.WatchCreateRequest) *pb.WatchRequest {
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: c}}
}

func TestWatchClientChosenIDs(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ws := rawStream(t, cli)
	if err := ws.Send(createReq(&pb.WatchCreateRequest{Key: []byte("id"), WatchId: 42})); err != nil {
		t.Fatal(err)
	}
	if r := recv(t, ws); !r.Created || r.WatchId != 42 || r.Header.MemberId == 0 {
		t.Fatalf("create with id 42: %v", r)
	}
	ws.Send(createReq(&pb.WatchCreateRequest{Key: []byte("id"), WatchId: 42}))
	if r := recv(t, ws); !r.Created || !r.Canceled || r.WatchId != -1 || r.CancelReason != "mvcc: duplicate watch ID provided on the WatchStream" {
		t.Fatalf("duplicate id: %v", r)
	}
	ws.Send(createReq(&pb.WatchCreateRequest{Key: []byte("id")}))
	auto := recv(t, ws)
	if !auto.Created || auto.WatchId != 0 {
		t.Fatalf("server-assigned id: %v", auto)
	}
	ws.Send(createReq(&pb.WatchCreateRequest{Key: []byte("b"), RangeEnd: []byte("a")}))
	if r := recv(t, ws); !r.Canceled || r.CancelReason != "mvcc: watcher range is empty" {
		t.Fatalf("empty range: %v", r)
	}
	ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 42}}})
	if r := recv(t, ws); !r.Canceled || r.WatchId != 42 {
		t.Fatalf("cancel: %v", r)
	}
	rev := mustPut(t, cli, "id", "v").Header.Revision
	if r := recv(t, ws); r.WatchId != 0 || len(r.Events) != 1 || r.Header.Revision != rev {
		t.Fatalf("event after cancel of the other watch: %v", r)
	}
}

func TestWatchFragment(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	big := strings.Repeat("x", 100<<10)
	first := mustPut(t, cli, "frag/00", big).Header.Revision
	for i := 1; i < 20; i++ {
		mustPut(t, cli, fmt.Sprintf("frag/%02d", i), big)
	}
	// Catching up from history sends all 2 MB in one response, above the
	// 1.5 MiB request limit: fragmented on the wire, whole for clientv3.
	ws := rawStream(t, cli)
	ws.Send(createReq(&pb.WatchCreateRequest{Key: []byte("frag/"), RangeEnd: []byte("frag0"), StartRevision: first, Fragment: true}))
	recv(t, ws) // created
	var n, parts int
	for n < 20 {
		r := recv(t, ws)
		parts++
		n += len(r.Events)
		if r.Fragment != (n < 20) {
			t.Fatalf("fragment flag %v with %d of 20 events", r.Fragment, n)
		}
	}
	if parts < 2 {
		t.Fatalf("2 MB of events came in %d response(s)", parts)
	}
	ctx := watchCtx(t)
	evs := collect(t, cli.Watch(ctx, "frag/", clientv3.WithPrefix(), clientv3.WithRev(first), clientv3.WithFragment()), 20)
	if len(evs) != 20 || string(evs[19].Kv.Key) != "frag/19" {
		t.Fatalf("clientv3 reassembled %d events", len(evs))
	}
}

func TestWatchProgress(t *testing.T) {
	c := framework.StartInProcess(t, 1)
	c.Member(0).Server.SetWatchProgressInterval(100 * time.Millisecond)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ctx := watchCtx(t)

	notified := cli.Watch(ctx, "p/quiet", clientv3.WithProgressNotify())
	rev := mustPut(t, cli, "p/other", "1").Header.Revision
	for r := range notified {
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		if r.IsProgressNotify() && r.Header.Revision >= rev {
			break
		}
	}

	// RequestProgress answers on the watches of the context's stream.
	rctx := clientv3.WithRequireLeader(ctx)
	wch := cli.Watch(rctx, "p/none")
	rev = mustPut(t, cli, "p/other", "2").Header.Revision
	if err := cli.RequestProgress(rctx); err != nil {
		t.Fatal(err)
	}
	for r := range wch {
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
		if r.IsProgressNotify() {
			if r.Header.Revision < rev {
				t.Fatalf("progress at %d, below the put at %d that returned before", r.Header.Revision, rev)
			}
			break
		}
	}
}

// TestWatchManyWatchers puts 10,000 watchers on one prefix; each must get
// every event of a burst of writes, in order.
func TestWatchManyWatchers(t *testing.T) {
	const watchers, writes = 10000, 20
	c := framework.StartInProcess(t, 1)
	cli := framework.NewClient(t, c.Spec.Members[0].ClientURL)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	chans := make([]clientv3.WatchChan, watchers)
	began := time.Now()
	// clientv3 puts watches whose contexts carry different metadata on
	// different gRPC streams; a few streams create in parallel.
	const streams = 4
	var cw sync.WaitGroup
	for s := range streams {
		cw.Add(1)
		go func() {
			defer cw.Done()
			sctx := metadata.AppendToOutgoingContext(ctx, "watch-stream", fmt.Sprint(s))
			for i := s; i < watchers; i += streams {
				chans[i] = cli.Watch(sctx, "many/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
				if r := <-chans[i]; !r.Created {
					t.Errorf("watcher %d: %+v", i, r)
					return
				}
			}
		}()
	}
	cw.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%d watchers created in %v", watchers, time.Since(began))
	began = time.Now()
	first := int64(0)
	for i := range writes {
		r := mustPut(t, cli, fmt.Sprintf("many/%d", i%3), fmt.Sprint(i))
		if i == 0 {
			first = r.Header.Revision
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, watchers)
	for i, wch := range chans {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := 0
			for next < writes {
				r, ok := <-wch
				if !ok || r.Err() != nil {
					errs <- fmt.Errorf("watcher %d closed after %d events: %v", i, next, r.Err())
					return
				}
				for _, ev := range r.Events {
					if ev.Kv.ModRevision != first+int64(next) || string(ev.Kv.Value) != fmt.Sprint(next) {
						errs <- fmt.Errorf("watcher %d: event %d is %s@%d", i, next, ev.Kv.Value, ev.Kv.ModRevision)
						return
					}
					next++
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("%d events delivered to each in %v", writes, time.Since(began))
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestWatchAcrossLeaderChange keeps a watch on a follower while the leader
// stops: the watch goes on with the new leader's writes.
func TestWatchAcrossLeaderChange(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	lead := c.WaitLeader(t)
	follower := (lead + 1) % 3
	cli := framework.NewClient(t, c.Spec.Members[follower].ClientURL)
	ctx := watchCtx(t)
	wch := cli.Watch(ctx, "lc")
	mustPut(t, cli, "lc", "before")
	collect(t, wch, 1)
	c.Stop(lead)
	c.WaitLeader(t)
	mustPut(t, cli, "lc", "after")
	if evs := collect(t, wch, 1); string(evs[0].Kv.Value) != "after" {
		t.Fatalf("after the leader change: %s", describe(evs))
	}
}
