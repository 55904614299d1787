package compat

import (
	"context"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// zkPrefix is where the ZooKeeper tree lives in the etcd key space.
const zkPrefix = "/.zk/"

// TestZKOneStore checks that the ZooKeeper tree is part of the one store:
// readable and watchable through the etcd API, with zxid = revision, and
// closed to etcd writes.
func TestZKOneStore(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		// On three members the etcd client talks to the leader, the
		// ZooKeeper client to a follower.
		cli := framework.NewClient(t, c.Spec.Members[c.WaitLeader(t)].ClientURL)
		zc := framework.ZKConnect(t, addrs[0])
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		wch := cli.Watch(ctx, zkPrefix, clientv3.WithPrefix(), clientv3.WithCreatedNotify())
		if r := <-wch; !r.Created {
			t.Fatalf("watch not created: %+v", r)
		}

		zkMustCreate(t, zc, "/onestore", []byte("v1"), zk.FlagPersistent)
		created := zkMustStat(t, zc, "/onestore")
		set, err := zc.Set("/onestore", []byte("v2"), -1)
		if err != nil {
			t.Fatal(err)
		}

		// The watch sees both writes at their zxids.
		var sawCreate, sawSet bool
		timeout := time.After(zkWait)
		for !sawCreate || !sawSet {
			select {
			case r, ok := <-wch:
				if !ok || r.Err() != nil {
					t.Fatalf("etcd watch on %s ended: %v", zkPrefix, r.Err())
				}
				for _, e := range r.Events {
					if !strings.Contains(string(e.Kv.Key), "onestore") || e.Type != mvccpb.PUT {
						continue
					}
					sawCreate = sawCreate || e.Kv.ModRevision == created.Czxid
					sawSet = sawSet || e.Kv.ModRevision == set.Mzxid
				}
			case <-timeout:
				t.Fatalf("etcd watch saw create at revision %d: %v, setData at %d: %v", created.Czxid, sawCreate, set.Mzxid, sawSet)
			}
		}

		// A range read finds the node, created at czxid and changed at mzxid.
		resp, err := cli.Get(ctx, zkPrefix, clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, kv := range resp.Kvs {
			if strings.Contains(string(kv.Key), "onestore") && kv.CreateRevision == created.Czxid && kv.ModRevision == set.Mzxid {
				found = true
			}
		}
		if !found {
			t.Errorf("no key under %s for /onestore with create revision %d and mod revision %d among %d keys", zkPrefix, created.Czxid, set.Mzxid, len(resp.Kvs))
		}
		if resp.Header.Revision < set.Mzxid {
			t.Errorf("etcd revision %d behind the zxid %d of a ZooKeeper write", resp.Header.Revision, set.Mzxid)
		}

		// etcd writes under the prefix are refused, and change nothing.
		refused := func(what string, err error) {
			t.Helper()
			if status.Code(err) != codes.InvalidArgument {
				t.Errorf("%s: got %v, want InvalidArgument", what, err)
			}
		}
		_, err = cli.Put(ctx, zkPrefix+"x", "v")
		refused("put under "+zkPrefix, err)
		if len(resp.Kvs) > 0 {
			_, err = cli.Put(ctx, string(resp.Kvs[0].Key), "overwritten")
			refused("put over "+string(resp.Kvs[0].Key), err)
		}
		_, err = cli.Delete(ctx, zkPrefix, clientv3.WithPrefix())
		refused("delete of the prefix", err)
		_, err = cli.Delete(ctx, "/", clientv3.WithPrefix())
		refused("delete of a range that covers the prefix", err)
		_, err = cli.Delete(ctx, "\x00", clientv3.WithFromKey())
		refused("delete of every key", err)
		_, err = cli.Txn(ctx).Then(clientv3.OpPut("/elsewhere", "v"), clientv3.OpPut(zkPrefix+"y", "v")).Commit()
		refused("txn with a put under the prefix", err)
		_, err = cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("/elsewhere"), "=", 0)).
			Else(clientv3.OpDelete(zkPrefix, clientv3.WithPrefix())).Commit()
		refused("txn with a delete of the prefix in its else branch", err)
		if g, err := cli.Get(ctx, "/elsewhere"); err != nil || len(g.Kvs) != 0 {
			t.Errorf("a refused txn applied its other op: %v %v", g, err)
		}
		// Next to the prefix is ordinary etcd land.
		if _, err := cli.Put(ctx, "/.zkx", "v"); err != nil {
			t.Errorf("put next to the prefix: %v", err)
		}
		if data, st := zkMustGet(t, zc, "/onestore"); string(data) != "v2" || st.Mzxid != set.Mzxid {
			t.Errorf("after refused etcd writes, /onestore is %q at mzxid %d", data, st.Mzxid)
		}
	})
}
