// Command discovery runs a few backend instances that register themselves
// in a service registry, and a router that sends each request key to the
// instance owning it on a consistent-hash ring fed live by discovery, so
// that when an instance dies its keys, and only its keys, move elsewhere.
//
//	go run ./examples/discovery --endpoints 127.0.0.1:2379 --instances 3 user-1 user-2 user-3
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// registryPrefix is where instances register.
const registryPrefix = "/services"

// service is the name the instances register under.
const service = "kv"

// errNoInstance is returned when no instance is alive to serve a key.
var errNoInstance = errors.New("discovery: no live instance")

// Instance is one backend: an HTTP server that says which instance
// answered, registered on a lease its own client keeps alive.
type Instance struct {
	ID  string
	cli *clientv3.Client
	srv *http.Server
	ln  net.Listener
	reg *recipes.Registration
}

// StartInstance starts an instance on a free loopback port and registers
// it with the given TTL, through a client of its own so that killing the
// instance also stops its lease's keep-alives, as a process dying would.
func StartInstance(ctx context.Context, endpoints []string, id string, ttl int) (*Instance, error) {
	cli, err := newClient(endpoints)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cli.Close()
		return nil, err
	}
	in := &Instance{ID: id, cli: cli, ln: ln}
	in.srv = &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s served %s", id, r.URL.Query().Get("key"))
	}), ReadHeaderTimeout: 5 * time.Second}
	go in.srv.Serve(ln)
	reg := recipes.NewRegistry(cli, registryPrefix, nil)
	in.reg, err = reg.Register(ctx, service, recipes.Instance{ID: id, Addr: ln.Addr().String(), Metadata: map[string]string{"proto": "http"}}, ttl)
	if err != nil {
		in.Kill()
		return nil, err
	}
	return in, nil
}

// Stop deregisters the instance at once and shuts it down.
func (in *Instance) Stop() {
	in.reg.Close()
	in.Kill()
}

// Kill shuts the instance down without deregistering, as a crash would:
// it stays registered until its lease expires.
func (in *Instance) Kill() {
	in.srv.Close()
	in.cli.Close()
}

// Router sends each key to the instance that owns it.
type Router struct {
	set  *recipes.ServiceSet
	ring *recipes.Ring
	hc   *http.Client
	stop context.CancelFunc
	done chan struct{}
}

// NewRouter discovers the instances and keeps a ring of them up to date.
func NewRouter(ctx context.Context, cli *clientv3.Client) (*Router, error) {
	set, err := recipes.NewRegistry(cli, registryPrefix, nil).Discover(ctx, service)
	if err != nil {
		return nil, err
	}
	fctx, stop := context.WithCancel(context.Background())
	r := &Router{set: set, ring: recipes.NewRing(recipes.RingConfig{}), hc: &http.Client{Timeout: 5 * time.Second}, stop: stop, done: make(chan struct{})}
	r.ring.Set(set.IDs())
	go func() {
		defer close(r.done)
		r.ring.Follow(fctx, set)
	}()
	return r, nil
}

// Owner is the instance that owns key now.
func (r *Router) Owner(key string) (recipes.Instance, error) {
	id, ok := r.ring.LocateString(key)
	if !ok {
		return recipes.Instance{}, errNoInstance
	}
	inst, ok := r.set.Lookup(id)
	if !ok {
		return recipes.Instance{}, errNoInstance
	}
	return inst, nil
}

// Route sends a request for key to its owner and returns the answer.
func (r *Router) Route(ctx context.Context, key string) (string, error) {
	inst, err := r.Owner(key)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+inst.Addr+"/?key="+url.QueryEscape(key), nil)
	if err != nil {
		return "", err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %s via %s: %w", key, inst.ID, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// WaitGone waits until the ring no longer routes to instance id.
func (r *Router) WaitGone(ctx context.Context, id string) error {
	for {
		changed := r.ring.Changed()
		if !slices.Contains(r.ring.Members(), id) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Members are the instances the ring currently routes to.
func (r *Router) Members() []string { return r.ring.Members() }

// Close stops following the registry.
func (r *Router) Close() {
	r.stop()
	<-r.done
	r.set.Close()
}

func newClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
}

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs")
	n := flag.Int("instances", 3, "how many instances to run")
	flag.Parse()
	keys := flag.Args()
	if len(keys) == 0 {
		keys = []string{"user-1", "user-2", "user-3", "user-4"}
	}
	if err := run(context.Background(), strings.Split(*endpoints, ","), *n, keys, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "discovery:", err)
		os.Exit(1)
	}
}

// run starts n instances, routes keys, kills one instance, waits until the
// router has dropped it, and routes the keys again.
func run(ctx context.Context, endpoints []string, n int, keys []string, out io.Writer) error {
	const ttl = 2
	var instances []*Instance
	defer func() {
		for _, in := range instances {
			in.Stop()
		}
	}()
	for i := range n {
		in, err := StartInstance(ctx, endpoints, fmt.Sprintf("instance-%d", i), ttl)
		if err != nil {
			return err
		}
		instances = append(instances, in)
	}
	cli, err := newClient(endpoints)
	if err != nil {
		return err
	}
	defer cli.Close()
	r, err := NewRouter(ctx, cli)
	if err != nil {
		return err
	}
	defer r.Close()
	route := func() error {
		for _, k := range keys {
			ans, err := r.Route(ctx, k)
			if err != nil {
				return err
			}
			fmt.Fprintln(out, ans)
		}
		return nil
	}
	if err := route(); err != nil {
		return err
	}
	victim := instances[0]
	instances = instances[1:]
	victim.Kill()
	fmt.Fprintf(out, "killed %s; waiting for its lease to expire\n", victim.ID)
	if err := r.WaitGone(ctx, victim.ID); err != nil {
		return err
	}
	return route()
}
