package transport

import (
	"context"
	"net"
	"testing"
	"time"
)

func TestFetchInfoAnswersWithoutClusterCheck(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr := New(Config{LocalID: 1, ClusterID: 7, Handler: newRecorder(), Info: func() []byte { return []byte(`{"cluster":7}`) }})
	defer tr.Close()
	go tr.Serve(l)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	info, err := FetchInfo(ctx, "http://"+l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if string(info) != `{"cluster":7}` {
		t.Fatalf("info = %q", info)
	}
	// A member with nothing to say answers so, rather than hanging.
	l2, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tr2 := New(Config{LocalID: 2, ClusterID: 7, Handler: newRecorder()})
	defer tr2.Close()
	go tr2.Serve(l2)
	if _, err := FetchInfo(ctx, "http://"+l2.Addr().String()); err != ErrNoInfo {
		t.Fatalf("empty info: %v, want ErrNoInfo", err)
	}
}
