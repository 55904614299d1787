package robustness

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Infinity is the return time of an operation whose outcome is unknown (an
// error or a timeout): it may take effect at any time after its call.
const Infinity = math.MaxInt64

// OpKind names a client operation.
type OpKind uint8

const (
	OpGet         OpKind = iota // linearizable range of one key
	OpGetSerial                 // serializable range of one key
	OpPut                       // put of a unique value
	OpDelete                    // delete of one key
	OpCAS                       // txn: if value (or absence) as expected then put else get
	OpLeaseGrant                // grant of a lease
	OpLeasePut                  // put of a key attached to a lease
	OpLeaseKeep                 // one keepalive of a lease
	OpLeaseRevoke               // revoke of a lease
	OpLockWrite                 // concurrency.Mutex holder's write guarded by its ownership
)

func (k OpKind) String() string {
	return [...]string{"get", "sget", "put", "delete", "cas", "grant", "lput", "keepalive", "revoke", "lockwrite"}[k]
}

// Op is one recorded client operation: what was asked, when, and what came
// back. Errors are kept, with Return = Infinity.
type Op struct {
	Client       int
	Kind         OpKind
	Key, Value   string // Value: what a put or CAS writes
	Expect       string // CAS: the value expected, "" for an absent key
	Lease        int64
	Call, Return int64
	Err          string

	Found     bool   // a read found the key
	Got       string // the value read
	ModRev    int64  // the mod revision of what was read
	Rev       int64  // the response header's revision (a write's own revision)
	Member    uint64 // the member that answered
	Succeeded bool   // CAS and lock writes: the comparison held
	Deleted   int64
}

// Unknown reports whether the outcome is unknown.
func (o *Op) Unknown() bool { return o.Return == Infinity }

func (o *Op) String() string {
	var b strings.Builder
	ret := "?"
	if !o.Unknown() {
		ret = fmt.Sprintf("%.3fs", float64(o.Return)/1e9)
	}
	fmt.Fprintf(&b, "c%d [%.3fs, %s] %v %s", o.Client, float64(o.Call)/1e9, ret, o.Kind, o.Key)
	switch o.Kind {
	case OpPut, OpLeasePut, OpLockWrite:
		fmt.Fprintf(&b, "=%s", o.Value)
	case OpCAS:
		fmt.Fprintf(&b, " if %q then %s", o.Expect, o.Value)
	}
	if o.Lease != 0 {
		fmt.Fprintf(&b, " lease=%x", o.Lease)
	}
	if o.Err != "" {
		fmt.Fprintf(&b, " -> error %s", o.Err)
		return b.String()
	}
	fmt.Fprintf(&b, " -> rev=%d member=%x", o.Rev, o.Member)
	switch o.Kind {
	case OpGet, OpGetSerial:
		if o.Found {
			fmt.Fprintf(&b, " %s@%d", o.Got, o.ModRev)
		} else {
			b.WriteString(" absent")
		}
	case OpCAS, OpLockWrite:
		fmt.Fprintf(&b, " ok=%v", o.Succeeded)
		if !o.Succeeded && o.Found {
			fmt.Fprintf(&b, " saw %s@%d", o.Got, o.ModRev)
		}
	case OpDelete:
		fmt.Fprintf(&b, " deleted=%d", o.Deleted)
	}
	return b.String()
}

// History is every operation of one run.
type History []Op

// Around returns the operations on key (all keys if "") whose intervals come
// within window nanoseconds of t, for failure reports.
func (h History) Around(key string, t, window int64) []string {
	var out []string
	idx := make([]int, 0, len(h))
	for i := range h {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return h[idx[a]].Call < h[idx[b]].Call })
	for _, i := range idx {
		o := &h[i]
		if key != "" && o.Key != key {
			continue
		}
		if o.Call <= t+window && (o.Unknown() || o.Return >= t-window) {
			out = append(out, o.String())
		}
	}
	const max = 60
	if len(out) > max {
		out = append(out[:max], fmt.Sprintf("... %d more", len(out)-max))
	}
	return out
}

// Violation is one broken guarantee, with enough context to replay it.
type Violation struct {
	Checker string
	Detail  string
	Context []string // operations or events around it
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "[%s] %s", v.Checker, v.Detail)
	for _, c := range v.Context {
		fmt.Fprintf(&b, "\n    %s", c)
	}
	return b.String()
}
