package recipes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"
)

// Format is how configuration values are written.
type Format int

// The formats Config reads.
const (
	JSON Format = iota
	YAML
)

func (f Format) String() string {
	if f == YAML {
		return "yaml"
	}
	return "json"
}

// ConfigOptions tune a Config. The zero value reads JSON and accepts
// anything that decodes.
type ConfigOptions[T any] struct {
	Format Format
	// Strict refuses fields that T does not have.
	Strict bool
	// Validate is called on every decoded value before it is used; a
	// non-nil error refuses the value and the last good one stays.
	Validate func(*T) error
	// Default is served when Start finds no valid configuration; without
	// it Start fails.
	Default *T
	// OnReject is told about every refused configuration.
	OnReject func(rev int64, err error)
	Logger   *slog.Logger
}

// Config is a configuration-centre client: it loads every key under a
// prefix into one typed value and keeps it current.
//
// Layout: the key PREFIX itself may hold a whole document; each key
// PREFIX/a/b holds the value of field b of field a, overriding the document.
// Values are JSON or YAML (ConfigOptions.Format). Keys are merged in key
// order, the document first, and the result is decoded into T with its
// json or yaml field tags.
//
// Guarantee: Get always returns a value that decoded and passed Validate,
// as of one store revision (all keys changed by one transaction are seen
// together, never half of them); values are swapped atomically, so readers
// on any goroutine see the old value or the new one, never a mixture; the
// OnChange callbacks run once per accepted change, in revision order, on
// one goroutine. A value that fails to decode or to validate is refused:
// Get keeps returning the last good value, LastError says why, and the
// OnReject callback is told.
//
// Failure behaviour: cut off from the cluster, Config keeps serving the
// last good value and resumes (reloading in full if the history it missed
// was compacted) when the watch reconnects. Earlier revisions can be read
// (At) and restored (Rollback) only while the cluster still holds them,
// that is until they are compacted.
type Config[T any] struct {
	cli  *clientv3.Client
	key  string // PREFIX
	pfx  string // PREFIX + "/"
	opts ConfigOptions[T]
	lg   *slog.Logger

	cur     atomic.Pointer[configValue[T]]
	mu      sync.Mutex
	lastErr error
	subs    []func(old, new *T, rev int64)

	cancel context.CancelFunc
	done   chan struct{}
}

type configValue[T any] struct {
	v     *T
	rev   int64
	canon []byte // the merged document, to tell real changes from rewrites
}

// NewConfig returns a Config for prefix; Start loads it.
func NewConfig[T any](cli *clientv3.Client, prefix string, opts ConfigOptions[T]) *Config[T] {
	lg := opts.Logger
	if lg == nil {
		lg = slog.New(slog.DiscardHandler)
	}
	key := strings.TrimSuffix(prefix, "/")
	return &Config[T]{cli: cli, key: key, pfx: key + "/", opts: opts, lg: lg}
}

// Start loads the configuration and keeps watching it until Close. It fails
// if the stored configuration is invalid and there is no Default.
func (c *Config[T]) Start(ctx context.Context) error {
	kvs, rev, mod, err := c.readMod(ctx, 0)
	if err != nil {
		return err
	}
	v, canon, err := c.decode(kvs)
	if err != nil {
		if c.opts.Default == nil {
			return fmt.Errorf("recipes: config %s at revision %d: %w", c.key, mod, err)
		}
		c.reject(mod, err)
		c.cur.Store(&configValue[T]{v: c.opts.Default, rev: 0})
	} else {
		c.cur.Store(&configValue[T]{v: v, rev: mod, canon: canon})
	}
	wctx, cancel := context.WithCancel(context.Background())
	c.cancel, c.done = cancel, make(chan struct{})
	go c.run(wctx, kvs, rev)
	return nil
}

// Close stops watching. Get keeps returning the last value.
func (c *Config[T]) Close() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
	}
}

// Get returns the current configuration (nil before Start). Treat it as
// read-only: it is shared with every other caller.
func (c *Config[T]) Get() *T {
	if cv := c.cur.Load(); cv != nil {
		return cv.v
	}
	return nil
}

// Revision is the store revision that made the configuration what it is
// (the last write to one of its keys that Config saw; 0 for the Default).
func (c *Config[T]) Revision() int64 {
	if cv := c.cur.Load(); cv != nil {
		return cv.rev
	}
	return 0
}

// LastError is why the most recent refused configuration was refused, or
// nil if the latest one was accepted.
func (c *Config[T]) LastError() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lastErr
}

// OnChange registers fn to be called with the old and new value after each
// accepted change. Callbacks run on the watching goroutine, in order, and
// must not block for long.
func (c *Config[T]) OnChange(fn func(old, new *T, rev int64)) {
	c.mu.Lock()
	c.subs = append(c.subs, fn)
	c.mu.Unlock()
}

// At returns the configuration as it was at revision rev, validated.
func (c *Config[T]) At(ctx context.Context, rev int64) (*T, error) {
	kvs, _, err := c.read(ctx, rev)
	if err != nil {
		return nil, err
	}
	v, _, err := c.decode(kvs)
	if err != nil {
		return nil, fmt.Errorf("recipes: config %s at revision %d: %w", c.key, rev, err)
	}
	return v, nil
}

// Rollback makes the stored configuration what it was at revision rev, in
// one transaction, and returns the revision of that transaction. It refuses
// (ErrInvalidConfig) to restore a value that no longer validates.
func (c *Config[T]) Rollback(ctx context.Context, rev int64) (int64, error) {
	old, _, err := c.read(ctx, rev)
	if err != nil {
		return 0, err
	}
	if _, _, err := c.decode(old); err != nil {
		return 0, fmt.Errorf("recipes: config %s: rollback to revision %d: %w", c.key, rev, err)
	}
	for {
		now, nowRev, err := c.read(ctx, 0)
		if err != nil {
			return 0, err
		}
		var ops []clientv3.Op
		// Every old key is written, even unchanged ones, so that a key
		// deleted after nowRev comes back too; the comparison below then
		// only has to catch keys created or changed after nowRev.
		for k, v := range old {
			ops = append(ops, clientv3.OpPut(k, string(v)))
		}
		for k := range now {
			if _, ok := old[k]; !ok {
				ops = append(ops, clientv3.OpDelete(k))
			}
		}
		resp, err := c.cli.Txn(ctx).
			If(
				clientv3.Compare(clientv3.ModRevision(c.key), "<", nowRev+1),
				clientv3.Compare(clientv3.ModRevision(c.pfx).WithPrefix(), "<", nowRev+1),
			).
			Then(ops...).
			Commit()
		if err != nil {
			return 0, err
		}
		if resp.Succeeded {
			return resp.Header.Revision, nil
		}
	}
}

func (c *Config[T]) rangeEnd() string { return clientv3.GetPrefixRangeEnd(c.pfx) }

// mine says whether a key in [PREFIX, end of PREFIX/) belongs to the
// configuration: the range also holds keys such as PREFIX.x.
func (c *Config[T]) mine(k string) bool { return k == c.key || strings.HasPrefix(k, c.pfx) }

// read returns the configuration's keys at rev (0: now) and the revision
// of the read.
func (c *Config[T]) read(ctx context.Context, rev int64) (map[string][]byte, int64, error) {
	kvs, hdr, _, err := c.readMod(ctx, rev)
	return kvs, hdr, err
}

// readMod is read that also returns the highest mod revision among the
// keys: the revision that made the configuration what it is (as far as
// surviving keys tell).
func (c *Config[T]) readMod(ctx context.Context, rev int64) (map[string][]byte, int64, int64, error) {
	opts := []clientv3.OpOption{clientv3.WithRange(c.rangeEnd())}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev))
	}
	g, err := c.cli.Get(ctx, c.key, opts...)
	if err != nil {
		return nil, 0, 0, fmt.Errorf("recipes: config %s: %w", c.key, err)
	}
	kvs := make(map[string][]byte, len(g.Kvs))
	var mod int64
	for _, kv := range g.Kvs {
		if c.mine(string(kv.Key)) {
			kvs[string(kv.Key)] = kv.Value
			mod = max(mod, kv.ModRevision)
		}
	}
	return kvs, g.Header.Revision, mod, nil
}

func (c *Config[T]) run(ctx context.Context, kvs map[string][]byte, rev int64) {
	defer close(c.done)
	for ctx.Err() == nil {
		wch := c.cli.Watch(clientv3.WithRequireLeader(ctx), c.key, clientv3.WithRange(c.rangeEnd()), clientv3.WithRev(rev+1))
		for wr := range wch {
			if wr.Err() != nil {
				break
			}
			var changed int64
			for _, ev := range wr.Events {
				k := string(ev.Kv.Key)
				if !c.mine(k) {
					continue
				}
				changed = ev.Kv.ModRevision
				if ev.Type == clientv3.EventTypeDelete {
					delete(kvs, k)
				} else {
					kvs[k] = ev.Kv.Value
				}
			}
			rev = wr.Header.Revision
			if changed > 0 {
				c.update(kvs, changed)
			}
		}
		if ctx.Err() != nil {
			return
		}
		// The watch ended without our asking: reload everything, which also
		// covers history that was compacted away meanwhile.
		for ctx.Err() == nil {
			fresh, r, mod, err := c.readMod(ctx, 0)
			if err == nil {
				kvs, rev = fresh, r
				c.update(kvs, mod)
				break
			}
			pause(ctx, retryPause)
		}
	}
}

// update decodes the keys as of rev and swaps them in if they are valid
// and differ from the current value.
func (c *Config[T]) update(kvs map[string][]byte, rev int64) {
	v, canon, err := c.decode(kvs)
	if err != nil {
		c.reject(rev, err)
		return
	}
	old := c.cur.Load()
	c.mu.Lock()
	c.lastErr = nil
	subs := slices.Clone(c.subs)
	c.mu.Unlock()
	if old != nil && bytes.Equal(old.canon, canon) {
		return
	}
	c.cur.Store(&configValue[T]{v: v, rev: rev, canon: canon})
	var ov *T
	if old != nil {
		ov = old.v
	}
	for _, fn := range subs {
		fn(ov, v, rev)
	}
}

func (c *Config[T]) reject(rev int64, err error) {
	c.lg.Warn("recipes: configuration refused; keeping the last good one", "prefix", c.key, "revision", rev, "err", err)
	c.mu.Lock()
	c.lastErr = fmt.Errorf("revision %d: %w", rev, err)
	c.mu.Unlock()
	if c.opts.OnReject != nil {
		c.opts.OnReject(rev, err)
	}
}

// decode merges the keys into one document and decodes and validates it.
// Every error it returns wraps ErrInvalidConfig.
func (c *Config[T]) decode(kvs map[string][]byte) (*T, []byte, error) {
	keys := make([]string, 0, len(kvs))
	for k := range kvs {
		keys = append(keys, k)
	}
	slices.Sort(keys) // PREFIX sorts before PREFIX/…, parents before children
	var root any = map[string]any{}
	for _, k := range keys {
		val, err := c.parse(kvs[k])
		if err != nil {
			return nil, nil, fmt.Errorf("%w: key %s: %v", ErrInvalidConfig, k, err)
		}
		if k == c.key {
			root = val
			continue
		}
		m, ok := root.(map[string]any)
		if !ok {
			m = map[string]any{}
			root = m
		}
		parts := strings.Split(strings.TrimPrefix(k, c.pfx), "/")
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = val
	}
	v := new(T)
	var canon []byte
	var err error
	switch c.opts.Format {
	case YAML:
		if canon, err = yaml.Marshal(root); err == nil {
			dec := yaml.NewDecoder(bytes.NewReader(canon))
			dec.KnownFields(c.opts.Strict)
			err = dec.Decode(v)
		}
	default:
		if canon, err = json.Marshal(root); err == nil {
			dec := json.NewDecoder(bytes.NewReader(canon))
			if c.opts.Strict {
				dec.DisallowUnknownFields()
			}
			err = dec.Decode(v)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	if c.opts.Validate != nil {
		if err := c.opts.Validate(v); err != nil {
			return nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
	}
	return v, canon, nil
}

// parse reads one stored value in the configured format.
func (c *Config[T]) parse(b []byte) (any, error) {
	var v any
	if c.opts.Format == YAML {
		if err := yaml.Unmarshal(b, &v); err != nil {
			return nil, err
		}
		return v, nil
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return v, nil
}
