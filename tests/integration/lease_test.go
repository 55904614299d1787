package integration

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"ensemble/tests/framework"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// TestFreshLeasesSurviveLeaderChange grants leases through the followers and
// renews each at once, while the leader is stopped and restarted. A new
// leader learns that its predecessor's last entries are committed only once
// an entry of its own term commits; until then it must not answer a renewal
// of a lease granted there with "not found" (TTL 0), which ends a client's
// session although nothing expired.
func TestFreshLeasesSurviveLeaderChange(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	var checked, lost atomic.Int64
	for range 3 {
		lead := c.WaitLeader(t)
		var eps []string
		for i, m := range c.Spec.Members {
			if i != lead {
				eps = append(eps, m.ClientURL)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		var wg sync.WaitGroup
		for w := range 6 {
			cli := framework.NewClient(t, eps[w%len(eps)])
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					l, err := cli.Grant(ctx, 5)
					if err != nil {
						continue
					}
					r, err := cli.KeepAliveOnce(ctx, l.ID)
					if ctx.Err() != nil {
						return
					}
					switch {
					case errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && r.TTL <= 0):
						lost.Add(1)
						t.Errorf("lease %x reported gone right after its grant (err %v)", l.ID, err)
					case err == nil:
						checked.Add(1)
					}
				}
			}()
		}
		time.Sleep(700 * time.Millisecond)
		c.Stop(lead)
		time.Sleep(1200 * time.Millisecond)
		c.Restart(t, lead)
		wg.Wait()
		cancel()
	}
	t.Logf("%d fresh leases renewed across 3 leader changes, %d reported gone", checked.Load(), lost.Load())
	if checked.Load() == 0 {
		t.Fatal("no lease was renewed at all")
	}
}
