package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/anishathalye/porcupine"
)

// kvInput and kvOutput are one operation of the key-value model.
type kvInput struct {
	Kind          OpKind
	Key           string
	Value, Expect string
}

type kvOutput struct {
	Unknown   bool
	Found     bool
	Got       string
	ModRev    int64
	Rev       int64
	Succeeded bool
	Deleted   int64
}

// kvState is one key: whether it exists, its value and its mod revision.
type kvState struct {
	Exists bool
	Value  string
	Rev    int64
}

// newKVModel is the sequential specification of one key under get, put,
// delete and compare-and-swap, including revisions: a write's revision must
// exceed the key's previous one, and a read returns the mod revision of
// the write it sees. Histories are partitioned by key.
func newKVModel() porcupine.Model {
	return porcupine.Model{
		Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
			byKey := map[string][]porcupine.Operation{}
			var keys []string
			for _, op := range history {
				k := op.Input.(kvInput).Key
				if _, ok := byKey[k]; !ok {
					keys = append(keys, k)
				}
				byKey[k] = append(byKey[k], op)
			}
			sort.Strings(keys)
			out := make([][]porcupine.Operation, 0, len(keys))
			for _, k := range keys {
				out = append(out, byKey[k])
			}
			return out
		},
		Init: func() any { return kvState{} },
		Step: func(state, input, output any) (bool, any) {
			return kvStep(state.(kvState), input.(kvInput), output.(kvOutput))
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(kvInput), output.(kvOutput)
			res := "?"
			if !out.Unknown || out.Rev != 0 {
				switch in.Kind {
				case OpGet:
					res = "absent"
					if out.Found {
						res = fmt.Sprintf("%s@%d", out.Got, out.ModRev)
					}
				case OpDelete:
					res = fmt.Sprintf("deleted=%d@%d", out.Deleted, out.Rev)
				case OpCAS:
					res = fmt.Sprintf("ok=%v@%d", out.Succeeded, out.Rev)
					if !out.Succeeded && out.Found {
						res += fmt.Sprintf(" saw %s@%d", out.Got, out.ModRev)
					}
				default:
					res = fmt.Sprintf("@%d", out.Rev)
				}
				if out.Unknown {
					res += " (unacknowledged)"
				}
			}
			switch in.Kind {
			case OpPut:
				return fmt.Sprintf("put(%s=%s) -> %s", in.Key, in.Value, res)
			case OpCAS:
				return fmt.Sprintf("cas(%s: %q -> %s) -> %s", in.Key, in.Expect, in.Value, res)
			default:
				return fmt.Sprintf("%v(%s) -> %s", in.Kind, in.Key, res)
			}
		},
		DescribeState: func(state any) string {
			s := state.(kvState)
			if !s.Exists {
				return "absent"
			}
			return fmt.Sprintf("%s@%d", s.Value, s.Rev)
		},
	}
}

func kvStep(s kvState, in kvInput, out kvOutput) (bool, kvState) {
	// A write's revision is known unless it failed with an unknown outcome
	// and was never seen (deletes carry no value to be recognised by).
	newer := func(rev int64) bool { return rev == 0 || rev > s.Rev }
	read := func() bool {
		return out.Found == s.Exists && (!out.Found || (out.Got == s.Value && out.ModRev == s.Rev))
	}
	switch in.Kind {
	case OpGet:
		return read(), s
	case OpPut:
		return newer(out.Rev), kvState{Exists: true, Value: in.Value, Rev: out.Rev}
	case OpDelete:
		if out.Unknown {
			return true, kvState{}
		}
		if (out.Deleted > 0) != s.Exists {
			return false, s
		}
		if out.Deleted > 0 && !newer(out.Rev) {
			return false, s
		}
		return true, kvState{}
	case OpCAS:
		cond := (in.Expect == "" && !s.Exists) || (s.Exists && in.Expect != "" && s.Value == in.Expect)
		if out.Unknown || out.Succeeded {
			return cond && newer(out.Rev), kvState{Exists: true, Value: in.Value, Rev: out.Rev}
		}
		return !cond && read(), s
	}
	return false, s
}

// patchHistory turns the recorded history into porcupine operations for
// the model keys. Unknown writes are resolved against the final store
// history, where every written value is unique: a put or CAS whose value
// appears took effect at that revision; one whose value never appears did
// not take effect and is left out. Failed reads carry no information and
// are left out; serializable reads are not linearizable and are checked
// elsewhere.
func patchHistory(h History, store *StoreHistory, isModelKey func(string) bool) []porcupine.Operation {
	written := map[string]int64{} // key + "\x00" + value -> revision
	for _, e := range store.Events {
		if !e.Delete {
			written[e.Key+"\x00"+e.Value] = e.Rev
		}
	}
	var ops []porcupine.Operation
	for i := range h {
		o := &h[i]
		if !isModelKey(o.Key) {
			continue
		}
		in := kvInput{Kind: o.Kind, Key: o.Key, Value: o.Value, Expect: o.Expect}
		out := kvOutput{Unknown: o.Unknown(), Found: o.Found, Got: o.Got, ModRev: o.ModRev,
			Rev: o.Rev, Succeeded: o.Succeeded, Deleted: o.Deleted}
		switch o.Kind {
		case OpGet:
			if o.Unknown() {
				continue
			}
		case OpPut, OpCAS:
			if o.Unknown() {
				rev, ok := written[o.Key+"\x00"+o.Value]
				if !ok {
					continue
				}
				out.Rev, out.Succeeded = rev, true
			}
		case OpDelete:
		default:
			continue
		}
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: in, Output: out,
			Call: o.Call, Return: o.Return, Metadata: i})
	}
	return ops
}

// CheckLinearizable checks the model keys' history with porcupine. On a
// violation it writes porcupine's visualisation to htmlPath (when not
// empty) and reports the operations of the offending key.
func CheckLinearizable(h History, store *StoreHistory, isModelKey func(string) bool, timeout time.Duration, htmlPath string) []Violation {
	ops := patchHistory(h, store, isModelKey)
	model := newKVModel()
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return []Violation{{Checker: "linearizability", Detail: fmt.Sprintf("porcupine timed out after %v on %d operations (not a proof of a violation)", timeout, len(ops))}}
	}
	v := Violation{Checker: "linearizability", Detail: fmt.Sprintf("history of %d operations is not linearizable", len(ops))}
	if htmlPath != "" {
		if err := os.MkdirAll(filepath.Dir(htmlPath), 0o755); err == nil {
			if err := porcupine.VisualizePath(model, info, htmlPath); err == nil {
				v.Detail += "; visualisation: " + htmlPath
			}
		}
	}
	// Name the keys whose partitions fail, with their operations.
	for _, part := range model.Partition(ops) {
		if porcupine.CheckOperations(model, part) {
			continue
		}
		key := part[0].Input.(kvInput).Key
		v.Detail += fmt.Sprintf("; key %s fails", key)
		// The longest linearizable prefix ends near the violation.
		var maxCall int64
		for _, lin := range info.PartialLinearizationsOperations() {
			for _, seq := range lin {
				for _, op := range seq {
					if op.Input.(kvInput).Key == key && op.Call > maxCall {
						maxCall = op.Call
					}
				}
			}
		}
		v.Context = append(v.Context, h.Around(key, maxCall, int64(500*time.Millisecond))...)
		break
	}
	return []Violation{v}
}
