package cli

import (
	"errors"
	"slices"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestSplitWords(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{`put k v`, []string{"put", "k", "v"}},
		{"  put\tk   v  ", []string{"put", "k", "v"}},
		{`put k "a value"`, []string{"put", "k", "a value"}},
		{`put k "line\nbreak \"quoted\""`, []string{"put", "k", "line\nbreak \"quoted\""}},
		{`put k 'single "raw" \n'`, []string{"put", "k", `single "raw" \n`}},
		{`put --lease="1f" k ""`, []string{"put", "--lease=1f", "k", ""}},
		{`put k a"b c"d`, []string{"put", "k", "ab cd"}},
		{``, nil},
	}
	for _, tc := range cases {
		got, err := splitWords(tc.in)
		if err != nil {
			t.Errorf("splitWords(%q): %v", tc.in, err)
			continue
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("splitWords(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{`put k "open`, `put k 'open`, `put k "bad \q escape"`} {
		if _, err := splitWords(bad); err == nil {
			t.Errorf("splitWords(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseCompare(t *testing.T) {
	cases := []struct {
		in     string
		key    string
		target pb.Compare_CompareTarget
		result pb.Compare_CompareResult
		want   any // int64 or string
	}{
		{`mod("key1") > "0"`, "key1", pb.Compare_MOD, pb.Compare_GREATER, int64(0)},
		{`m("k") = "12"`, "k", pb.Compare_MOD, pb.Compare_EQUAL, int64(12)},
		{`create("k") < "5"`, "k", pb.Compare_CREATE, pb.Compare_LESS, int64(5)},
		{`c("k") != "5"`, "k", pb.Compare_CREATE, pb.Compare_NOT_EQUAL, int64(5)},
		{`ver("k") = "3"`, "k", pb.Compare_VERSION, pb.Compare_EQUAL, int64(3)},
		{`version( "k" )  =  "0"`, "k", pb.Compare_VERSION, pb.Compare_EQUAL, int64(0)},
		{`val("key two") = "some value"`, "key two", pb.Compare_VALUE, pb.Compare_EQUAL, "some value"},
		{`value("k") != "a \"q\""`, "k", pb.Compare_VALUE, pb.Compare_NOT_EQUAL, `a "q"`},
		{`val("k") = bare`, "k", pb.Compare_VALUE, pb.Compare_EQUAL, "bare"},
		{`lease("k") = "1f"`, "k", pb.Compare_LEASE, pb.Compare_EQUAL, int64(0x1f)},
		{`mod(k) > 7`, "k", pb.Compare_MOD, pb.Compare_GREATER, int64(7)},
	}
	for _, tc := range cases {
		cmp, err := parseCompare(tc.in)
		if err != nil {
			t.Errorf("parseCompare(%q): %v", tc.in, err)
			continue
		}
		if string(cmp.Key) != tc.key || cmp.Target != tc.target || cmp.Result != tc.result {
			t.Errorf("parseCompare(%q) = key %q target %v result %v, want %q %v %v",
				tc.in, cmp.Key, cmp.Target, cmp.Result, tc.key, tc.target, tc.result)
		}
		var got any
		switch u := cmp.TargetUnion.(type) {
		case *pb.Compare_ModRevision:
			got = u.ModRevision
		case *pb.Compare_CreateRevision:
			got = u.CreateRevision
		case *pb.Compare_Version:
			got = u.Version
		case *pb.Compare_Lease:
			got = u.Lease
		case *pb.Compare_Value:
			got = string(u.Value)
		}
		if got != tc.want {
			t.Errorf("parseCompare(%q) compares with %#v, want %#v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{
		`mod "k" > "0"`,     // no parenthesis
		`mod("k" > "0"`,     // no closing parenthesis
		`mod("k") >= "0"`,   // no such operator
		`mod("k") ~ "0"`,    // no such operator
		`mod("k") > "x"`,    // not a number
		`lease("k") = "zz"`, // not hexadecimal
		`age("k") > "0"`,    // no such target
		`mod("k") > "0" and more`,
		`val("k) = "x"`, // unterminated key
	} {
		if _, err := parseCompare(bad); err == nil {
			t.Errorf("parseCompare(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseRequest(t *testing.T) {
	op, err := parseRequest(`put key1 "overwrote key1"`)
	if err != nil || !op.IsPut() || string(op.KeyBytes()) != "key1" || string(op.ValueBytes()) != "overwrote key1" {
		t.Fatalf("put: %+v %v", op, err)
	}
	op, err = parseRequest(`put --lease=1f k v`)
	if err != nil || !op.IsPut() {
		t.Fatalf("put with lease: %v", err)
	}
	op, err = parseRequest(`get k --prefix --limit 3 --rev 9 --keys-only`)
	if err != nil || !op.IsGet() || string(op.KeyBytes()) != "k" || string(op.RangeBytes()) != "l" ||
		op.Limit() != 3 || op.Rev() != 9 || !op.IsKeysOnly() {
		t.Fatalf("get --prefix: %+v %v", op, err)
	}
	op, err = parseRequest(`get a c`)
	if err != nil || string(op.KeyBytes()) != "a" || string(op.RangeBytes()) != "c" {
		t.Fatalf("get range: %+v %v", op, err)
	}
	op, err = parseRequest(`get "" --prefix`)
	if err != nil || string(op.KeyBytes()) != "\x00" || string(op.RangeBytes()) != "\x00" {
		t.Fatalf("get everything: %q..%q %v", op.KeyBytes(), op.RangeBytes(), err)
	}
	op, err = parseRequest(`del k --prefix`)
	if err != nil || !op.IsDelete() || string(op.KeyBytes()) != "k" || string(op.RangeBytes()) != "l" {
		t.Fatalf("del --prefix: %+v %v", op, err)
	}
	op, err = parseRequest(`put k -- -v`)
	if err != nil || string(op.ValueBytes()) != "-v" {
		t.Fatalf("put a value that starts with '-': %+v %v", op, err)
	}
	for _, bad := range []string{
		`put k`,                     // no value, and a txn line has no stdin
		`put k v extra`,             // too many words
		`get`,                       // no key
		`get k --prefix --from-key`, // exclusive
		`get k --no-such-flag`,
		`del a b --prefix`,
		`watch k`,
		`put --lease=xyz k v`,
		`get k --sort-by AGE`,
	} {
		if _, err := parseRequest(bad); err == nil {
			t.Errorf("parseRequest(%q) succeeded, want an error", bad)
		}
	}
}

func TestReadTxn(t *testing.T) {
	in := `mod("key1") > "0"
val("key2") = "x"

put key1 "overwrote-key1"

put key1 "created-key1"
get key2 --prefix

`
	var prompts []string
	txn, err := readTxn(strings.NewReader(in), func(p string) { prompts = append(prompts, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(txn.cmps) != 2 || len(txn.onSuccess) != 1 || len(txn.onFailure) != 2 {
		t.Fatalf("parts: %d compares, %d on success, %d on failure", len(txn.cmps), len(txn.onSuccess), len(txn.onFailure))
	}
	if !slices.Equal(prompts, []string{promptCompares, promptSuccess, promptFailure}) {
		t.Fatalf("prompts %q", prompts)
	}
	if !txn.onFailure[1].IsGet() || string(txn.onFailure[1].KeyBytes()) != "key2" {
		t.Fatalf("last request: %+v", txn.onFailure[1])
	}
}

// The input may end anywhere a blank line may come: the parts not given are
// empty.
func TestReadTxnEndsEarly(t *testing.T) {
	cases := []struct {
		in                  string
		cmps, succ, failure int
	}{
		{"", 0, 0, 0},
		{`mod("k") > "0"`, 1, 0, 0},
		{"mod(\"k\") > \"0\"\n", 1, 0, 0},
		{"mod(\"k\") > \"0\"\n\nput k v", 1, 1, 0},
		{"\nput k v\n\nput k w", 0, 1, 1},
		{"\n\nput k w\n", 0, 0, 1},
		{"\r\nput k v\r\n\r\n", 0, 1, 0},
	}
	for _, tc := range cases {
		txn, err := readTxn(strings.NewReader(tc.in), nil)
		if err != nil {
			t.Errorf("readTxn(%q): %v", tc.in, err)
			continue
		}
		if len(txn.cmps) != tc.cmps || len(txn.onSuccess) != tc.succ || len(txn.onFailure) != tc.failure {
			t.Errorf("readTxn(%q) = %d/%d/%d parts, want %d/%d/%d", tc.in,
				len(txn.cmps), len(txn.onSuccess), len(txn.onFailure), tc.cmps, tc.succ, tc.failure)
		}
	}
}

func TestReadTxnErrorNamesTheLine(t *testing.T) {
	_, err := readTxn(strings.NewReader("mod(\"k\") > \"0\"\n\nput k v\nfrobnicate k\n"), nil)
	if err == nil || !strings.Contains(err.Error(), "txn line 4") || !strings.Contains(err.Error(), "frobnicate") {
		t.Fatalf("error %v, want one naming line 4 and the bad word", err)
	}
	var u usageError
	if !errors.As(err, &u) {
		t.Fatalf("a malformed transaction is a usage error, got %T", err)
	}
}

// A transaction read from text is what a hand-built one would be.
func TestReadTxnMatchesClientOps(t *testing.T) {
	txn, err := readTxn(strings.NewReader("ver(\"a\") = \"0\"\n\nput a 1 --prev-kv\n\ndel a\n"), nil)
	if err != nil {
		t.Fatal(err)
	}
	want := clientv3.Compare(clientv3.Version("a"), "=", 0)
	got := txn.cmps[0]
	if got.Target != want.Target || got.Result != want.Result || string(got.Key) != "a" {
		t.Fatalf("compare %+v, want %+v", got, want)
	}
	if !txn.onSuccess[0].IsPut() || !txn.onFailure[0].IsDelete() {
		t.Fatalf("requests: %+v / %+v", txn.onSuccess[0], txn.onFailure[0])
	}
}
