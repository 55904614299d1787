package e2e

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

type node struct {
	name, client, peer, dir string
	zk                      string
	proc                    *framework.Process
}

func (n *node) args(cluster, state string) []string {
	return []string{
		"--name", n.name, "--data-dir", n.dir,
		"--listen-client-urls", n.client, "--advertise-client-urls", n.client,
		"--listen-peer-urls", n.peer, "--initial-advertise-peer-urls", n.peer,
		"--listen-zk-addr", n.zk,
		"--initial-cluster", cluster, "--initial-cluster-state", state,
		"--initial-cluster-token", "grow", "--heartbeat-interval", "20", "--election-timeout", "200",
	}
}

func (n *node) start(t *testing.T, cluster, state string) {
	t.Helper()
	n.proc = &framework.Process{Bin: binary, Args: n.args(cluster, state), Log: n.dir + ".log"}
	if err := n.proc.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.proc.Kill()
		if t.Failed() {
			t.Logf("--- log of %s ---\n%s", n.name, n.proc.Output())
		}
	})
}

func waitCount(t *testing.T, cli *clientv3.Client, prefix string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		r, err := cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly(), clientv3.WithSerializable())
		cancel()
		if err == nil && r.Count == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v: count of %s never reached %d (last %v, %v)", cli.Endpoints(), prefix, want, r, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestGrowPromoteAndShrinkCluster(t *testing.T) {
	dir := t.TempDir()
	ports := framework.FreePorts(t, 9)
	nodes := make([]*node, 3)
	for i := range nodes {
		nodes[i] = &node{
			name:   fmt.Sprintf("m%d", i+1),
			client: fmt.Sprintf("http://127.0.0.1:%d", ports[2*i]),
			peer:   fmt.Sprintf("http://127.0.0.1:%d", ports[2*i+1]),
			zk:     fmt.Sprintf("127.0.0.1:%d", ports[6+i]),
			dir:    filepath.Join(dir, fmt.Sprintf("m%d.ensemble", i+1)),
		}
	}
	cluster := func(n int) string {
		var parts []string
		for _, m := range nodes[:n] {
			parts = append(parts, m.name+"="+m.peer)
		}
		return strings.Join(parts, ",")
	}
	ctx := func() context.Context { return framework.Ctx(t) }

	// One member, some data.
	nodes[0].start(t, cluster(1), "new")
	c1 := framework.NewClient(t, nodes[0].client)
	for i := range 100 {
		if _, err := c1.Put(ctx(), fmt.Sprintf("grow/%03d", i), "v"); err != nil {
			t.Fatal(err)
		}
	}

	// A second voter joins an existing cluster.
	add, err := c1.MemberAdd(ctx(), []string{nodes[1].peer})
	if err != nil {
		t.Fatal(err)
	}
	nodes[1].start(t, cluster(2), "existing")
	c2 := framework.NewClient(t, nodes[1].client)
	waitCount(t, c2, "grow/", 100)
	if _, err := c2.Put(ctx(), "grow/100", "through m2"); err != nil {
		t.Fatalf("write through the new member: %v", err)
	}

	// A third one as a learner: it follows, serves serializable reads,
	// refuses what it cannot serve, and is promoted once it has caught up.
	addL, err := c1.MemberAddAsLearner(ctx(), []string{nodes[2].peer})
	if err != nil {
		t.Fatal(err)
	}
	if !addL.Member.IsLearner {
		t.Fatalf("added member is not a learner: %+v", addL.Member)
	}
	nodes[2].start(t, cluster(3), "existing")
	c3 := framework.NewClient(t, nodes[2].client)
	waitCount(t, c3, "grow/", 101)
	if _, err := c3.Put(ctx(), "grow/learner", "v"); !strings.Contains(fmt.Sprint(err), "not supported for learner") {
		t.Fatalf("write through a learner: %v, want not supported for learner", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := c1.MemberPromote(ctx(), addL.Member.ID)
		if err == nil {
			break
		}
		if !errors.Is(err, rpctypes.ErrMemberLearnerNotReady) || time.Now().After(deadline) {
			t.Fatalf("promote: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ml, err := c1.MemberList(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 3 {
		t.Fatalf("member list after growing: %+v", ml.Members)
	}
	for _, m := range ml.Members {
		if m.IsLearner || m.Name == "" || len(m.ClientURLs) == 0 {
			t.Fatalf("member after promotion: %+v", m)
		}
	}
	if _, err := c1.MemberPromote(ctx(), addL.Member.ID); !errors.Is(err, rpctypes.ErrMemberNotLearner) {
		t.Fatalf("promoting a voter: %v, want %v", err, rpctypes.ErrMemberNotLearner)
	}

	// Remove the second member: it stops by itself and says why; the other
	// two go on.
	if _, err := c1.MemberRemove(ctx(), add.Member.ID); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for nodes[1].proc.Running() {
		if time.Now().After(deadline) {
			t.Fatalf("removed member is still running")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(nodes[1].proc.Output(), "removed from the cluster") {
		t.Fatalf("removed member did not say why it stopped:\n%s", nodes[1].proc.Output())
	}
	if _, err := c1.Put(ctx(), "grow/after-remove", "v"); err != nil {
		t.Fatal(err)
	}
	if r, err := c3.Get(ctx(), "grow/", clientv3.WithPrefix(), clientv3.WithCountOnly()); err != nil || r.Count != 102 {
		t.Fatalf("linearizable count through the promoted member: %v %v", r, err)
	}
	if _, err := c1.MemberRemove(ctx(), add.Member.ID); !errors.Is(err, rpctypes.ErrMemberNotFound) {
		t.Fatalf("removing a removed member: %v, want %v", err, rpctypes.ErrMemberNotFound)
	}
}
