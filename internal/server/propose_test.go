package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"ensemble/internal/apply"
	"ensemble/internal/config"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startSingle(t *testing.T, dir string, peerPort int) *Server {
	t.Helper()
	peer := fmt.Sprintf("http://127.0.0.1:%d", peerPort)
	cfg, err := config.Parse([]string{
		"--name", "solo", "--data-dir", dir,
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", freePort(t)),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "solo=" + peer,
		"--heartbeat-interval", "10", "--election-timeout", "100",
	}, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !s.node.IsLeader() {
		if time.Now().After(deadline) {
			t.Fatal("no leader")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return s
}

// TestStaleProposalIsSkipped is the regression test for the double apply the
// robustness suite found (split-5, seed 3): an attempt that reaches the log
// in another term than it was proposed in must not be applied, and its
// proposer must learn so, so that only the attempt it makes next can apply.
func TestStaleProposalIsSkipped(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	s := startSingle(t, dir, port)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("before")}); err != nil {
		t.Fatal(err)
	}
	oldTerm := s.node.Term()
	// A restart elects the member again, in a later term.
	s.Stop()
	s = startSingle(t, dir, port)
	defer s.Stop()
	if s.node.Term() <= oldTerm {
		t.Fatalf("term did not move on restart: %d then %d", oldTerm, s.node.Term())
	}

	// An attempt stamped with the old term, as one held up in a paused member
	// and forwarded late would be.
	r := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: s.reqIDs.id()}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("late")}}
	data, err := apply.EncodeEtcd(r, oldTerm)
	if err != nil {
		t.Fatal(err)
	}
	ch := s.waits.register(r.Header.ID)
	rev := s.KV().Rev()
	if err := s.node.Propose(ctx, data); err != nil {
		t.Fatal(err)
	}
	select {
	case res := <-ch:
		if !errors.Is(res.Err, apply.ErrStaleProposal) {
			t.Fatalf("stale attempt: result %+v, want %v", res, apply.ErrStaleProposal)
		}
	case <-ctx.Done():
		t.Fatal("stale attempt never reported")
	}
	got, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Kvs[0].Value) != "before" || s.KV().Rev() != rev {
		t.Fatalf("stale attempt was applied: value %q, revision %d -> %d", got.Kvs[0].Value, rev, s.KV().Rev())
	}

	// The normal path stamps the current term and applies exactly once.
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("now")}); err != nil {
		t.Fatal(err)
	}
	got, _ = s.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
	if string(got.Kvs[0].Value) != "now" || got.Kvs[0].Version != 2 || s.KV().Rev() != rev+1 {
		t.Fatalf("after a normal put: %+v at revision %d, want version 2 at %d", got.Kvs[0], s.KV().Rev(), rev+1)
	}
}

func TestStaleRule(t *testing.T) {
	for _, c := range []struct {
		proposed, entry uint64
		stale           bool
	}{{0, 5, false}, {5, 5, false}, {4, 5, true}, {6, 5, true}} {
		if got := apply.Stale(c.proposed, c.entry); got != c.stale {
			t.Errorf("Stale(%d, %d) = %v, want %v", c.proposed, c.entry, got, c.stale)
		}
	}
}

// TestLateStaleAttemptDoesNotStartAnother is the regression test for the
// second double apply the robustness suite found (long run, split-5): the
// stale result of an older attempt, arriving while the current attempt is on
// its way, must not be taken for the current attempt's death.
func TestLateStaleAttemptDoesNotStartAnother(t *testing.T) {
	dir, port := t.TempDir(), freePort(t)
	s := startSingle(t, dir, port)
	oldTerm := s.node.Term()
	s.Stop()
	s = startSingle(t, dir, port)
	defer s.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v0")}); err != nil {
		t.Fatal(err)
	}
	kv := s.KV()
	rev := kv.Rev()

	// Pause the apply loop: it waits for the store's writer while we hold it.
	ci, ct := kv.ConsistentIndex()
	hold := kv.Write(ci, ct)
	propose := func(r *pb.InternalRaftRequest, term uint64) {
		t.Helper()
		data, err := apply.EncodeEtcd(r, term)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.node.Propose(ctx, data); err != nil {
			t.Fatal(err)
		}
	}
	// Something for the loop to stop at, then the stranded older attempt of
	// the request, then (through proposeOnce) its current attempt.
	base := s.node.Status().Commit
	propose(&pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: s.reqIDs.id()}, Put: &pb.PutRequest{Key: []byte("other"), Value: []byte("x")}}, s.node.Term())
	r := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: s.reqIDs.id()}, Put: &pb.PutRequest{Key: []byte("k"), Value: []byte("once")}}
	stale := &pb.InternalRaftRequest{Header: r.Header, Put: r.Put}
	propose(stale, oldTerm)
	// Wait until both are committed, so that the attempt lands after them.
	for s.node.Status().Commit < base+2 {
		time.Sleep(time.Millisecond)
	}
	before := s.node.Status().Commit
	done := make(chan error, 1)
	go func() {
		_, err := s.proposeOnce(ctx, r.Header.ID, etcdEncoder(r))
		done <- err
	}()
	for s.node.Status().Commit < before+1 {
		time.Sleep(time.Millisecond)
	}
	hold.End()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// Let anything else the proposer may have started be applied, then look.
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("sentinel"), Value: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Kvs[0]; string(v.Value) != "once" || v.Version != 2 {
		t.Fatalf("k = %q at version %d, want \"once\" at version 2 (written exactly once)", v.Value, v.Version)
	}
	if s.KV().Rev() != rev+3 { // other, k, sentinel
		t.Fatalf("revision moved from %d to %d, want %d", rev, s.KV().Rev(), rev+3)
	}
}
