package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"ensemble/tests/framework"
)

// getRev reads the cluster's revision from `get -w json`.
func ctlRev(t *testing.T, e ectl) int64 {
	t.Helper()
	var doc struct {
		Header struct {
			Revision int64 `json:"revision"`
		} `json:"header"`
	}
	out := e.ok("", "-w", "json", "get", "any-key")
	if err := json.Unmarshal([]byte(out), &doc); err != nil || doc.Header.Revision == 0 {
		t.Fatalf("get -w json: %q, %v", out, err)
	}
	return doc.Header.Revision
}

func ctlExpect(t *testing.T, e ectl, want string, args ...string) {
	t.Helper()
	if got := e.ok("", args...); got != want {
		t.Fatalf("ensemblectl %q printed %q, want %q", args, got, want)
	}
}

func TestCtlKV(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)

	ctlExpect(t, e, "OK\n", "put", "k1", "v1")
	rev1 := ctlRev(t, e)
	ctlExpect(t, e, "OK\n", "put", "k2", "v2")
	ctlExpect(t, e, "OK\n", "put", "k3", "v3")
	ctlExpect(t, e, "OK\nk1\nv1\n", "put", "k1", "v1b", "--prev-kv")
	// A value not given comes from stdin, and one that starts with '-'
	// comes after "--".
	ctlExpect(t, e, "OK\n", "put", "k4")
	if out := e.ok("from stdin\nover two lines", "put", "k5"); out != "OK\n" {
		t.Fatalf("put from stdin: %q", out)
	}
	ctlExpect(t, e, "k5\nfrom stdin\nover two lines\n", "get", "k5")
	ctlExpect(t, e, "OK\n", "put", "k4", "--", "-dash")
	ctlExpect(t, e, "k4\n-dash\n", "get", "k4")

	t.Run("get", func(t *testing.T) {
		e := e.on(t)
		ctlExpect(t, e, "k1\nv1b\nk2\nv2\nk3\nv3\nk4\n-dash\nk5\nfrom stdin\nover two lines\n", "get", "k", "--prefix")
		ctlExpect(t, e, "k1\n\nk2\n\nk3\n\nk4\n\nk5\n\n", "get", "k", "--prefix", "--keys-only")
		ctlExpect(t, e, "5\n", "get", "k", "--prefix", "--count-only")
		ctlExpect(t, e, "k1\nv1b\nk2\nv2\n", "get", "k", "--prefix", "--limit", "2")
		ctlExpect(t, e, "k1\nv1b\nk2\nv2\n", "get", "k1", "k3")
		ctlExpect(t, e, "k3\nv3\nk4\n-dash\nk5\nfrom stdin\nover two lines\n", "get", "k3", "--from-key")
		ctlExpect(t, e, "k5\n\nk4\n\nk3\n\n", "get", "k", "--prefix", "--sort-by", "KEY", "--order", "DESCEND", "--limit", "3", "--keys-only")
		ctlExpect(t, e, "v2\nv3\nv1b\n", "get", "k1", "k4", "--sort-by", "MODIFY", "--print-value-only")
		ctlExpect(t, e, "-dash\nfrom stdin\nover two lines\nv1b\n", "get", "k", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND", "--limit", "3", "--print-value-only")
		ctlExpect(t, e, "v1\n", "get", "k1", "--rev", fmt.Sprint(rev1), "--print-value-only")
		ctlExpect(t, e, "", "get", "nothing-here")
		ctlExpect(t, e, "k2\nv2\n", "get", "k2", "--consistency", "s")

		var doc struct {
			Header struct {
				Revision int64 `json:"revision"`
				MemberID uint64
			} `json:"header"`
			Kvs []struct {
				Key            []byte `json:"key"`
				Value          []byte `json:"value"`
				CreateRevision int64  `json:"create_revision"`
				Version        int64  `json:"version"`
			} `json:"kvs"`
			Count int64 `json:"count"`
		}
		out := e.ok("", "-w", "json", "get", "k1")
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			t.Fatalf("get -w json: %q: %v", out, err)
		}
		if doc.Count != 1 || len(doc.Kvs) != 1 || string(doc.Kvs[0].Key) != "k1" || string(doc.Kvs[0].Value) != "v1b" ||
			doc.Kvs[0].CreateRevision != rev1 || doc.Kvs[0].Version != 2 || doc.Header.Revision <= rev1 {
			t.Fatalf("get -w json: %s", out)
		}
		if !strings.Contains(out, `"key":"azE="`) {
			t.Fatalf("get -w json does not carry the key in base64 as etcd does: %s", out)
		}
		table := e.ok("", "-w", "table", "get", "k", "--prefix", "--limit", "2")
		for _, want := range []string{"| KEY | VALUE | CREATE REV | MOD REV | VERSION | LEASE |", "| k1  | v1b   |", "| k2  | v2    |"} {
			if !strings.Contains(table, want) {
				t.Fatalf("get -w table lacks %q:\n%s", want, table)
			}
		}
	})

	t.Run("del", func(t *testing.T) {
		e := e.on(t)
		ctlExpect(t, e, "1\n", "del", "k3")
		ctlExpect(t, e, "0\n", "del", "k3")
		ctlExpect(t, e, "2\nk1\nv1b\nk2\nv2\n", "del", "k1", "k3", "--prev-kv")
		ctlExpect(t, e, "2\n", "del", "k", "--prefix")
		ctlExpect(t, e, "0\n", "get", "k", "--prefix", "--count-only")
		e.ok("", "put", "z1", "1")
		e.ok("", "put", "z2", "2")
		ctlExpect(t, e, "1\n", "del", "z2", "--from-key")
		out := e.ok("", "-w", "json", "del", "z1")
		if !strings.Contains(out, `"deleted":1`) {
			t.Fatalf("del -w json: %s", out)
		}
	})

	t.Run("txn", func(t *testing.T) {
		e := e.on(t)
		e.ok("", "put", "t1", "a")
		script := `val("t1") = "a"
mod("t1") > "0"

put t1 "b b"
get t1

put t1 "failed"

`
		// Reads in a transaction see its earlier writes, as in etcd.
		if out := e.ok(script, "txn"); out != "SUCCESS\n\nOK\n\nt1\nb b\n" {
			t.Fatalf("first txn: %q", out)
		}
		if out := e.ok(script, "txn"); out != "FAILURE\n\nOK\n" {
			t.Fatalf("second txn: %q", out)
		}
		ctlExpect(t, e, "t1\nfailed\n", "get", "t1")

		// Interactive: each part is prompted for.
		out := e.ok("ver(\"t1\") = \"3\"\n\nput t2 'single quoted'\n\n\n", "txn", "-i")
		want := "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\nSUCCESS\n\nOK\n"
		if out != want {
			t.Fatalf("txn -i printed %q, want %q", out, want)
		}
		ctlExpect(t, e, "single quoted\n", "get", "t2", "--print-value-only")

		out = e.ok("create(\"nope\") = \"0\"\n\ndel t --prefix\n\n", "-w", "json", "txn")
		var doc struct {
			Succeeded bool              `json:"succeeded"`
			Responses []json.RawMessage `json:"responses"`
		}
		if err := json.Unmarshal([]byte(out), &doc); err != nil || !doc.Succeeded || len(doc.Responses) != 1 {
			t.Fatalf("txn -w json: %s (%v)", out, err)
		}
		ctlExpect(t, e, "0\n", "get", "t", "--prefix", "--count-only")

		stdout, stderr, code := e.run("mod(\"t1\") >= \"1\"\n", "txn")
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, "Error: txn line 1: ") || strings.Count(stderr, "\n") != 1 {
			t.Fatalf("malformed txn: exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})

	t.Run("compaction", func(t *testing.T) {
		e := e.on(t)
		e.ok("", "put", "c", "1")
		rev := ctlRev(t, e)
		e.ok("", "put", "c", "2")
		ctlExpect(t, e, fmt.Sprintf("compacted revision %d\n", rev), "compaction", "--physical", fmt.Sprint(rev))
		e.fails(1, "compacted", "get", "c", "--rev", fmt.Sprint(rev-1))
		e.fails(1, "compacted", "compaction", fmt.Sprint(rev-1))
		ctlExpect(t, e, "1\n", "get", "c", "--rev", fmt.Sprint(rev), "--print-value-only")
	})

	t.Run("environment", func(t *testing.T) {
		env := ectl{t: t, bin: e.bin, env: []string{"ENSEMBLE_ENDPOINTS=" + strings.Join(c.Spec.Endpoints(), ",")}}
		ctlExpect(t, env, "OK\n", "put", "env", "yes")
		ctlExpect(t, env, "yes\n", "get", "env", "--print-value-only")
	})
}
