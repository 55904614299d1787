package recipes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Instance is one registered instance of a service.
type Instance struct {
	ID       string            `json:"id"`
	Addr     string            `json:"addr"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Registry registers instances of services and discovers them.
//
// Layout: PREFIX/<service>/<instance id> holds the instance as JSON
// ({"id":…,"addr":…,"metadata":{…}}), attached to a lease of its own that
// the registering process keeps alive.
//
// Guarantee: a registered instance is visible to every discoverer until it
// is closed or its lease expires; Discover's set equals the registry's
// contents at the revision of its last change, and reports every change
// after the set was loaded, in order.
//
// Failure behaviour: an instance whose process dies, or that is cut off
// from the cluster, stops renewing its lease and disappears from every
// discoverer within its TTL (plus the watch's delivery delay). The
// registering process learns that its registration lapsed through
// Registration.Done, and must register again to reappear. A discoverer cut
// off from the cluster keeps serving the last set it saw and catches up,
// reporting the differences, when it reconnects (reloading in full if the
// history it missed was compacted).
type Registry struct {
	cli *clientv3.Client
	pfx string
	lg  *slog.Logger
}

// NewRegistry returns the registry under prefix. lg may be nil.
func NewRegistry(cli *clientv3.Client, prefix string, lg *slog.Logger) *Registry {
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	return &Registry{cli: cli, pfx: prefixOf(prefix), lg: lg}
}

func (r *Registry) servicePrefix(service string) string { return r.pfx + service + "/" }

// Registration is one live registration.
//
// Guarantee: the instance stays registered while the registration's lease
// is kept alive, and Close removes it at once (the lease is revoked).
//
// Failure behaviour: if the process dies or is cut off for longer than the
// TTL, the lease expires and the instance vanishes from every discoverer;
// Done closes once the keep-alives have ended (at the latest about a second
// after the TTL passed without a reply). The registration is not renewed by
// itself: register again to come back.
type Registration struct {
	s   *concurrency.Session
	key string
}

// Register publishes inst under service on a fresh lease of ttl seconds,
// kept alive until Close.
func (r *Registry) Register(ctx context.Context, service string, inst Instance, ttl int) (*Registration, error) {
	if service == "" || strings.Contains(service, "/") || inst.ID == "" || strings.Contains(inst.ID, "/") {
		return nil, fmt.Errorf("recipes: register %q/%q: service and id must be non-empty and contain no '/'", service, inst.ID)
	}
	val, err := json.Marshal(inst)
	if err != nil {
		return nil, fmt.Errorf("recipes: register %s/%s: %w", service, inst.ID, err)
	}
	s, err := concurrency.NewSession(r.cli, concurrency.WithTTL(ttl), concurrency.WithContext(context.WithoutCancel(ctx)))
	if err != nil {
		return nil, fmt.Errorf("recipes: register %s/%s: %w", service, inst.ID, err)
	}
	key := r.servicePrefix(service) + inst.ID
	if _, err := r.cli.Put(ctx, key, string(val), clientv3.WithLease(s.Lease())); err != nil {
		s.Close()
		return nil, fmt.Errorf("recipes: register %s/%s: %w", service, inst.ID, err)
	}
	return &Registration{s: s, key: key}, nil
}

// Key is the registration's key.
func (g *Registration) Key() string { return g.key }

// Lease is the registration's lease.
func (g *Registration) Lease() clientv3.LeaseID { return g.s.Lease() }

// Done closes when the registration is no longer being kept alive: after
// Close, or when the lease expired or could not be renewed in time.
func (g *Registration) Done() <-chan struct{} { return g.s.Done() }

// Close deregisters the instance at once by revoking its lease.
func (g *Registration) Close() error { return g.s.Close() }

// EventType says what happened to an instance.
type EventType int

// The kinds of change Discover reports.
const (
	Added EventType = iota + 1
	Updated
	Removed
)

func (t EventType) String() string {
	switch t {
	case Added:
		return "added"
	case Updated:
		return "updated"
	case Removed:
		return "removed"
	}
	return fmt.Sprintf("EventType(%d)", int(t))
}

// Event is one change to a discovered service.
type Event struct {
	Type     EventType
	Instance Instance // for Removed, the instance as last seen
	Revision int64
}

// ServiceSet is the live set of a service's instances, kept up to date by a
// watch.
//
// Guarantee: Instances, IDs and Lookup reflect the registry at one store
// revision (Revision); Subscribe delivers every change after the call, in
// revision order, each exactly once; a subscriber that reads slowly delays
// only itself. It is safe for concurrent use.
//
// Failure behaviour: when the watch breaks (leader loss, reconnection,
// compaction of the history it needed) the set reloads the service in full
// and reports the differences as events, so nothing is missed, though
// several changes to one instance made meanwhile may be reported as one.
// Cut off from the cluster, the set serves what it last saw.
type ServiceSet struct {
	r       *Registry
	pfx     string
	cancel  context.CancelFunc
	done    chan struct{}
	mu      sync.Mutex
	byKey   map[string]Instance
	rev     int64
	subs    map[*subscriber]struct{}
	closed  bool
	changed chan struct{}
}

// Discover loads the instances of service and keeps them current until
// Close.
func (r *Registry) Discover(ctx context.Context, service string) (*ServiceSet, error) {
	ss := &ServiceSet{
		r: r, pfx: r.servicePrefix(service),
		byKey: map[string]Instance{}, subs: map[*subscriber]struct{}{},
		done: make(chan struct{}), changed: make(chan struct{}),
	}
	if err := ss.load(ctx); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	ss.cancel = cancel
	go ss.run(wctx)
	return ss, nil
}

// load reads the whole service and reports the differences from what the
// set held.
func (ss *ServiceSet) load(ctx context.Context) error {
	g, err := ss.r.cli.Get(ctx, ss.pfx, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("recipes: discover %s: %w", ss.pfx, err)
	}
	fresh := make(map[string]Instance, len(g.Kvs))
	for _, kv := range g.Kvs {
		if inst, ok := ss.decode(kv.Key, kv.Value); ok {
			fresh[string(kv.Key)] = inst
		}
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var evs []Event
	for k, old := range ss.byKey {
		if _, ok := fresh[k]; !ok {
			evs = append(evs, Event{Type: Removed, Instance: old, Revision: g.Header.Revision})
		}
	}
	for k, inst := range fresh {
		if old, ok := ss.byKey[k]; !ok {
			evs = append(evs, Event{Type: Added, Instance: inst, Revision: g.Header.Revision})
		} else if !sameInstance(old, inst) {
			evs = append(evs, Event{Type: Updated, Instance: inst, Revision: g.Header.Revision})
		}
	}
	ss.byKey, ss.rev = fresh, g.Header.Revision
	ss.publishLocked(evs)
	return nil
}

func sameInstance(a, b Instance) bool {
	if a.ID != b.ID || a.Addr != b.Addr || len(a.Metadata) != len(b.Metadata) {
		return false
	}
	for k, v := range a.Metadata {
		if bv, ok := b.Metadata[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

func (ss *ServiceSet) decode(key, val []byte) (Instance, bool) {
	var inst Instance
	if err := json.Unmarshal(val, &inst); err != nil {
		ss.r.lg.Warn("recipes: ignoring undecodable instance", "key", string(key), "err", err)
		return Instance{}, false
	}
	if inst.ID == "" {
		inst.ID = strings.TrimPrefix(string(key), ss.pfx)
	}
	return inst, true
}

func (ss *ServiceSet) run(ctx context.Context) {
	defer close(ss.done)
	for ctx.Err() == nil {
		ss.mu.Lock()
		rev := ss.rev
		ss.mu.Unlock()
		wch := ss.r.cli.Watch(clientv3.WithRequireLeader(ctx), ss.pfx, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
		for wr := range wch {
			if err := wr.Err(); err != nil {
				if errors.Is(err, rpctypes.ErrCompacted) {
					ss.r.lg.Info("recipes: discovery watch compacted; reloading", "prefix", ss.pfx)
				}
				break
			}
			ss.apply(wr)
		}
		if ctx.Err() != nil {
			return
		}
		// The watch ended (compaction, leader loss, reconnect): reload and
		// report the differences, so nothing that happened meanwhile is lost.
		for ctx.Err() == nil {
			if err := ss.load(ctx); err == nil {
				break
			}
			pause(ctx, retryPause)
		}
	}
}

func (ss *ServiceSet) apply(wr clientv3.WatchResponse) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	var evs []Event
	for _, ev := range wr.Events {
		k := string(ev.Kv.Key)
		switch ev.Type {
		case clientv3.EventTypePut:
			inst, ok := ss.decode(ev.Kv.Key, ev.Kv.Value)
			if !ok {
				continue
			}
			typ := Added
			if _, had := ss.byKey[k]; had {
				typ = Updated
			}
			ss.byKey[k] = inst
			evs = append(evs, Event{Type: typ, Instance: inst, Revision: ev.Kv.ModRevision})
		case clientv3.EventTypeDelete:
			old, had := ss.byKey[k]
			if !had {
				continue
			}
			delete(ss.byKey, k)
			evs = append(evs, Event{Type: Removed, Instance: old, Revision: ev.Kv.ModRevision})
		}
	}
	if wr.Header.Revision > ss.rev {
		ss.rev = wr.Header.Revision
	}
	ss.publishLocked(evs)
}

// publishLocked hands evs to every subscriber and wakes Changed waiters.
func (ss *ServiceSet) publishLocked(evs []Event) {
	if len(evs) == 0 {
		return
	}
	for s := range ss.subs {
		s.push(evs)
	}
	close(ss.changed)
	ss.changed = make(chan struct{})
}

// Instances returns the current instances, sorted by ID.
func (ss *ServiceSet) Instances() []Instance {
	ss.mu.Lock()
	out := make([]Instance, 0, len(ss.byKey))
	for _, inst := range ss.byKey {
		out = append(out, inst)
	}
	ss.mu.Unlock()
	slices.SortFunc(out, func(a, b Instance) int { return strings.Compare(a.ID, b.ID) })
	return out
}

// IDs returns the current instance IDs, sorted.
func (ss *ServiceSet) IDs() []string {
	ss.mu.Lock()
	out := make([]string, 0, len(ss.byKey))
	for _, inst := range ss.byKey {
		out = append(out, inst.ID)
	}
	ss.mu.Unlock()
	slices.Sort(out)
	return out
}

// Lookup returns the instance with the given ID.
func (ss *ServiceSet) Lookup(id string) (Instance, bool) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	inst, ok := ss.byKey[ss.pfx+id]
	return inst, ok
}

// Revision is the store revision the set reflects.
func (ss *ServiceSet) Revision() int64 {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.rev
}

// Changed returns a channel that closes at the next change of the set.
func (ss *ServiceSet) Changed() <-chan struct{} {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.changed
}

// Subscribe returns every change made after the call, in order and without
// loss (a slow reader only delays its own channel), until ctx ends or the
// set is closed; then the channel closes.
func (ss *ServiceSet) Subscribe(ctx context.Context) <-chan Event {
	s := &subscriber{out: make(chan Event), wake: make(chan struct{}, 1)}
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		close(s.out)
		return s.out
	}
	ss.subs[s] = struct{}{}
	ss.mu.Unlock()
	go func() {
		defer func() {
			ss.mu.Lock()
			delete(ss.subs, s)
			ss.mu.Unlock()
			close(s.out)
		}()
		s.deliver(ctx, ss.done)
	}()
	return s.out
}

// Close stops watching; subscriptions end.
func (ss *ServiceSet) Close() {
	ss.mu.Lock()
	ss.closed = true
	ss.mu.Unlock()
	ss.cancel()
	<-ss.done
}

// subscriber queues events for one reader so that the watch loop never
// blocks on it.
type subscriber struct {
	mu    sync.Mutex
	queue []Event
	out   chan Event
	wake  chan struct{}
}

func (s *subscriber) push(evs []Event) {
	s.mu.Lock()
	s.queue = append(s.queue, evs...)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *subscriber) deliver(ctx context.Context, closed <-chan struct{}) {
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		for _, ev := range batch {
			select {
			case s.out <- ev:
			case <-ctx.Done():
				return
			case <-closed:
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-s.wake:
		case <-ctx.Done():
			return
		case <-closed:
			return
		}
	}
}
