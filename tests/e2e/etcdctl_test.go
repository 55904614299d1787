package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

// etcdctlVersion is the release of the real etcdctl the suite drives; its
// output formats are what the assertions below pin down.
const etcdctlVersion = "v3.6.16"

// buildEtcdctl builds the real etcdctl from the Go module proxy into a fresh
// directory. `go install pkg@version` refuses etcdctl because its go.mod has
// replace directives, so it is built as a dependency of a throwaway module
// laid out outside this repository: our go.mod is never touched, and only
// Go's own module and build caches are reused between runs.
func buildEtcdctl(t *testing.T) string {
	t.Helper()
	mod := t.TempDir()
	bin := filepath.Join(t.TempDir(), "etcdctl")
	env := append(os.Environ(), "GOFLAGS=-mod=mod", "GOWORK=off")
	steps := [][]string{
		{"go", "mod", "init", "etcdctlbuild"},
		{"go", "get", "go.etcd.io/etcd/etcdctl/v3@" + etcdctlVersion},
		{"go", "build", "-o", bin, "go.etcd.io/etcd/etcdctl/v3"},
	}
	for _, s := range steps {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		cmd := exec.CommandContext(ctx, s[0], s[1:]...)
		cmd.Dir, cmd.Env = mod, env
		out, err := cmd.CombinedOutput()
		cancel()
		if err != nil {
			t.Fatalf("building etcdctl %s: %s: %v\n%s", etcdctlVersion, strings.Join(s, " "), err, out)
		}
	}
	cmd := exec.Command(bin, "version")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "etcdctl version: "+strings.TrimPrefix(etcdctlVersion, "v")) {
		t.Fatalf("built etcdctl reports %q, %v", out, err)
	}
	return bin
}

// ctl runs one etcdctl binary against fixed endpoints.
type ctl struct {
	t         *testing.T
	bin       string
	endpoints []string
}

// run executes etcdctl with args, feeding stdin, and returns stdout, stderr
// and the exit error.
func (c ctl) run(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	full := append([]string{
		"--endpoints", strings.Join(c.endpoints, ","),
		"--dial-timeout", "5s", "--command-timeout", "10s",
	}, args...)
	cmd := exec.CommandContext(ctx, c.bin, full...)
	// ETCDCTL_* variables of whoever runs the suite must not steer it.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCDCTL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// ok runs etcdctl and fails the test unless it exits 0; it returns stdout.
func (c ctl) ok(stdin string, args ...string) string {
	c.t.Helper()
	out, errOut, err := c.run(stdin, args...)
	if err != nil {
		c.t.Fatalf("etcdctl %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// expect runs etcdctl and insists on exactly want on stdout.
func (c ctl) expect(want string, args ...string) {
	c.t.Helper()
	if got := c.ok("", args...); got != want {
		c.t.Errorf("etcdctl %s:\ngot  %q\nwant %q", strings.Join(args, " "), got, want)
	}
}

// txn feeds etcdctl txn its non-interactive stdin and insists on want.
func (c ctl) txn(stdin, want string) {
	c.t.Helper()
	if got := c.ok(stdin, "txn"); got != want {
		c.t.Errorf("etcdctl txn <<%q:\ngot  %q\nwant %q", stdin, got, want)
	}
}

// The JSON shapes etcdctl -w json prints: protobuf messages through
// encoding/json, so snake_case header fields and []byte as base64.
type jsonHeader struct {
	ClusterID uint64 `json:"cluster_id"`
	MemberID  uint64 `json:"member_id"`
	Revision  int64  `json:"revision"`
	RaftTerm  uint64 `json:"raft_term"`
}

type jsonKV struct {
	Key            []byte `json:"key"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Value          []byte `json:"value"`
	Lease          int64  `json:"lease"`
}

type jsonGet struct {
	Header jsonHeader `json:"header"`
	Kvs    []jsonKV   `json:"kvs"`
	Count  int64      `json:"count"`
	More   bool       `json:"more"`
}

type jsonMember struct {
	ID         uint64   `json:"ID"`
	Name       string   `json:"name"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs"`
	IsLearner  bool     `json:"isLearner"`
}

type jsonMemberList struct {
	Header  jsonHeader   `json:"header"`
	Members []jsonMember `json:"members"`
}

type jsonEndpointStatus struct {
	Endpoint string `json:"Endpoint"`
	Status   struct {
		Header           jsonHeader `json:"header"`
		Version          string     `json:"version"`
		DBSize           int64      `json:"dbSize"`
		Leader           uint64     `json:"leader"`
		RaftIndex        uint64     `json:"raftIndex"`
		RaftTerm         uint64     `json:"raftTerm"`
		RaftAppliedIndex uint64     `json:"raftAppliedIndex"`
		Errors           []string   `json:"errors"`
		DBSizeInUse      int64      `json:"dbSizeInUse"`
		IsLearner        bool       `json:"isLearner"`
	} `json:"Status"`
}

type jsonEndpointHealth struct {
	Endpoint string `json:"endpoint"`
	Health   bool   `json:"health"`
	Took     string `json:"took"`
	Error    string `json:"error"`
}

func decodeJSON(t *testing.T, what, out string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("%s: not JSON of the expected shape: %v\n%s", what, err, out)
	}
}

func TestEtcdctl(t *testing.T) {
	bin := buildEtcdctl(t)
	t.Run("single", func(t *testing.T) {
		spec := framework.NewClusterSpec(t, 1, t.TempDir())
		framework.StartProcesses(t, binary, spec)
		checkEtcdctl(t, bin, spec)
	})
	t.Run("three", func(t *testing.T) {
		spec := framework.NewClusterSpec(t, 3, t.TempDir())
		c := framework.StartProcesses(t, binary, spec)
		c.Leader(t)
		checkEtcdctl(t, bin, spec)
	})
}

// checkEtcdctl runs the etcdctl commands an operator reaches for first
// against a running cluster and pins their output down.
func checkEtcdctl(t *testing.T, bin string, spec framework.ClusterSpec) {
	all := ctl{t: t, bin: bin, endpoints: spec.Endpoints()}

	// Plain key-value commands, in etcdctl's simple output format.
	all.expect("OK\n", "put", "k", "v")
	all.expect("k\nv\n", "get", "k")
	all.expect("OK\n", "put", "pfx/a", "1")
	all.expect("OK\n", "put", "pfx/b", "2")
	all.expect("OK\n", "put", "pfy", "3") // shares "pf" but not "pfx/"
	all.expect("pfx/a\n1\npfx/b\n2\n", "get", "--prefix", "pfx/")
	all.expect("pfx/a\n\npfx/b\n\n", "get", "--prefix", "--keys-only", "pfx/")
	all.expect("1\n2\n", "get", "--prefix", "--print-value-only", "pfx/")
	all.expect("pfx/a\n1\npfx/b\n2\npfy\n3\n", "get", "pfx/", "pfz") // a range [pfx/, pfz)
	all.expect("", "get", "missing")

	// Every member serves the latest value (linearizable reads), not just
	// the one that took the write.
	for i, m := range spec.Members {
		one := ctl{t: t, bin: bin, endpoints: []string{m.ClientURL}}
		if got := one.ok("", "get", "k"); got != "k\nv\n" {
			t.Errorf("get k through member %d (%s): %q", i, m.Name, got)
		}
	}

	// JSON output: the header and key-value fields, with the revisions the
	// put reported.
	var put jsonGet
	decodeJSON(t, "put -w json", all.ok("", "put", "-w", "json", "jk", "jv"), &put)
	if put.Header.Revision <= 0 || put.Header.ClusterID == 0 || put.Header.MemberID == 0 || put.Header.RaftTerm == 0 {
		t.Errorf("put -w json header: %+v", put.Header)
	}
	var got jsonGet
	decodeJSON(t, "get -w json", all.ok("", "get", "-w", "json", "jk"), &got)
	if got.Header.Revision < put.Header.Revision || got.Header.ClusterID != put.Header.ClusterID || got.Header.RaftTerm == 0 {
		t.Errorf("get -w json header %+v after put header %+v", got.Header, put.Header)
	}
	if got.Count != 1 || len(got.Kvs) != 1 {
		t.Fatalf("get -w json: count %d, kvs %+v", got.Count, got.Kvs)
	}
	if kv := got.Kvs[0]; string(kv.Key) != "jk" || string(kv.Value) != "jv" || kv.CreateRevision != put.Header.Revision ||
		kv.ModRevision != put.Header.Revision || kv.Version != 1 || kv.Lease != 0 {
		t.Errorf("get -w json kv: %+v (put at revision %d)", kv, put.Header.Revision)
	}
	all.expect("OK\n", "put", "jk", "jv2")
	decodeJSON(t, "get -w json", all.ok("", "get", "-w", "json", "jk"), &got)
	if kv := got.Kvs[0]; string(kv.Value) != "jv2" || kv.CreateRevision != put.Header.Revision ||
		kv.ModRevision <= put.Header.Revision || kv.Version != 2 || got.Header.Revision != kv.ModRevision {
		t.Errorf("get -w json after overwrite: header %+v kv %+v", got.Header, kv)
	}
	decodeJSON(t, "get --prefix -w json", all.ok("", "get", "--prefix", "-w", "json", "pfx/"), &got)
	if got.Count != 2 || len(got.Kvs) != 2 || string(got.Kvs[0].Key) != "pfx/a" || string(got.Kvs[1].Key) != "pfx/b" {
		t.Errorf("get --prefix -w json: count %d kvs %+v", got.Count, got.Kvs)
	}

	// Deletes print how many keys went.
	all.expect("1\n", "del", "k")
	all.expect("", "get", "k")
	all.expect("0\n", "del", "k")
	all.expect("2\n", "del", "--prefix", "pfx/")
	all.expect("pfy\n3\n", "get", "--prefix", "pf")

	// txn in etcdctl's non-interactive format: compares, a blank line,
	// success ops, a blank line, failure ops, a blank line.
	all.expect("OK\n", "put", "tk", "a")
	all.txn("value(\"tk\") = \"a\"\nmod(\"tk\") > \"0\"\nversion(\"tk\") = \"1\"\n\n"+
		"put tk b\nget tk\ndel pfy\nput tk2 x\n\n"+
		"put tk fail\n\n",
		"SUCCESS\n\nOK\n\ntk\nb\n\n1\n\nOK\n")
	all.expect("tk\nb\n", "get", "tk")
	all.expect("tk2\nx\n", "get", "tk2")
	all.expect("", "get", "pfy")
	all.txn("value(\"tk\") = \"zz\"\n\n"+
		"put tk c\n\n"+
		"get tk\nput tk failed\n\n",
		"FAILURE\n\ntk\nb\n\nOK\n")
	all.expect("tk\nfailed\n", "get", "tk")
	// A compare on a key that does not exist: its version is 0.
	all.txn("version(\"nokey\") = \"0\"\n\nput nokey created\n\n\n", "SUCCESS\n\nOK\n")
	all.expect("nokey\ncreated\n", "get", "nokey")

	// member list: one line per member, in ID order as etcd prints it.
	var ml jsonMemberList
	decodeJSON(t, "member list -w json", all.ok("", "member", "list", "-w", "json"), &ml)
	if len(ml.Members) != len(spec.Members) || ml.Header.ClusterID == 0 || ml.Header.ClusterID != put.Header.ClusterID {
		t.Fatalf("member list -w json: header %+v, %d members, want %d", ml.Header, len(ml.Members), len(spec.Members))
	}
	byName := map[string]jsonMember{}
	idOf := map[string]uint64{} // client URL -> member ID
	for _, m := range ml.Members {
		if m.ID == 0 || m.IsLearner {
			t.Errorf("member list -w json: member %+v", m)
		}
		byName[m.Name] = m
		for _, u := range m.ClientURLs {
			idOf[u] = m.ID
		}
	}
	for _, m := range spec.Members {
		jm, ok := byName[m.Name]
		if !ok || !slices.Equal(jm.PeerURLs, []string{m.PeerURL}) || !slices.Equal(jm.ClientURLs, []string{m.ClientURL}) {
			t.Errorf("member list -w json: %s is %+v, want peer %s client %s", m.Name, jm, m.PeerURL, m.ClientURL)
		}
	}
	if len(idOf) != len(spec.Members) {
		t.Errorf("member list -w json: client URLs %v", idOf)
	}
	sorted := slices.Clone(ml.Members)
	slices.SortFunc(sorted, func(a, b jsonMember) int {
		switch {
		case a.ID < b.ID:
			return -1
		case a.ID > b.ID:
			return 1
		}
		return 0
	})
	var wantLines []string
	var wantRows [][]string
	for _, m := range sorted {
		id := fmt.Sprintf("%x", m.ID)
		peer, client := strings.Join(m.PeerURLs, ","), strings.Join(m.ClientURLs, ",")
		wantLines = append(wantLines, fmt.Sprintf("%s, started, %s, %s, %s, false\n", id, m.Name, peer, client))
		wantRows = append(wantRows, []string{id, "started", m.Name, peer, client, "false"})
	}
	all.expect(strings.Join(wantLines, ""), "member", "list")
	checkTable(t, "member list -w table", all.ok("", "member", "list", "-w", "table"),
		[]string{"ID", "STATUS", "NAME", "PEER ADDRS", "CLIENT ADDRS", "IS LEARNER"}, wantRows)

	// endpoint status: every endpoint answers for itself and all agree on
	// one leader that is a member.
	var sts []jsonEndpointStatus
	decodeJSON(t, "endpoint status -w json", all.ok("", "endpoint", "status", "-w", "json"), &sts)
	if len(sts) != len(spec.Members) {
		t.Fatalf("endpoint status -w json: %d entries, want %d", len(sts), len(spec.Members))
	}
	versionRe := regexp.MustCompile(`^3\.6\.\d+$`)
	leaders := map[uint64]bool{}
	for _, st := range sts {
		s := st.Status
		id, ok := idOf[st.Endpoint]
		switch {
		case !ok:
			t.Errorf("endpoint status for unknown endpoint %q", st.Endpoint)
		case s.Header.MemberID != id:
			t.Errorf("%s: header member_id %x, member list says %x", st.Endpoint, s.Header.MemberID, id)
		}
		if s.Header.ClusterID != ml.Header.ClusterID {
			t.Errorf("%s: cluster_id %x, want %x", st.Endpoint, s.Header.ClusterID, ml.Header.ClusterID)
		}
		if s.Leader == 0 || !slices.ContainsFunc(ml.Members, func(m jsonMember) bool { return m.ID == s.Leader }) {
			t.Errorf("%s: leader %x is not a member", st.Endpoint, s.Leader)
		}
		leaders[s.Leader] = true
		if s.RaftTerm == 0 || s.Header.RaftTerm != s.RaftTerm {
			t.Errorf("%s: raftTerm %d, header raft_term %d", st.Endpoint, s.RaftTerm, s.Header.RaftTerm)
		}
		if s.RaftIndex == 0 || s.RaftAppliedIndex == 0 || s.RaftAppliedIndex > s.RaftIndex {
			t.Errorf("%s: raftIndex %d, raftAppliedIndex %d", st.Endpoint, s.RaftIndex, s.RaftAppliedIndex)
		}
		if s.DBSize <= 0 || s.DBSizeInUse <= 0 || s.DBSizeInUse > s.DBSize {
			t.Errorf("%s: dbSize %d, dbSizeInUse %d", st.Endpoint, s.DBSize, s.DBSizeInUse)
		}
		if !versionRe.MatchString(s.Version) {
			t.Errorf("%s: version %q, want the etcd API version 3.6.x", st.Endpoint, s.Version)
		}
		if s.Header.Revision < got.Header.Revision {
			t.Errorf("%s: revision %d, below %d read earlier", st.Endpoint, s.Header.Revision, got.Header.Revision)
		}
		if len(s.Errors) != 0 || s.IsLearner {
			t.Errorf("%s: errors %q, learner %v", st.Endpoint, s.Errors, s.IsLearner)
		}
	}
	if len(leaders) != 1 {
		t.Errorf("endpoint status: members disagree on the leader: %v", leaders)
	}
	// The simple format: one line per endpoint, exactly one saying it leads.
	simple := all.ok("", "endpoint", "status")
	lines := strings.Split(strings.TrimSuffix(simple, "\n"), "\n")
	nLead := 0
	for _, l := range lines {
		f := strings.Split(l, ", ")
		if len(f) < 11 {
			t.Errorf("endpoint status line %q: %d fields", l, len(f))
			continue
		}
		if id, ok := idOf[f[0]]; !ok || f[1] != fmt.Sprintf("%x", id) || !versionRe.MatchString(f[2]) {
			t.Errorf("endpoint status line %q: endpoint, ID or version wrong", l)
		}
		if f[8] == "true" {
			nLead++
		}
	}
	if len(lines) != len(spec.Members) || nLead != 1 {
		t.Errorf("endpoint status: %d lines, %d leaders:\n%s", len(lines), nLead, simple)
	}

	// endpoint health: a quorum read plus the alarm list (Maintenance.Alarm),
	// per endpoint. A subtest so that its failure names itself.
	t.Run("endpoint_health", func(t *testing.T) {
		all := ctl{t: t, bin: bin, endpoints: spec.Endpoints()}
		checkEndpointHealth(t, all, spec, idOf)
	})
}

func checkEndpointHealth(t *testing.T, all ctl, spec framework.ClusterSpec, idOf map[string]uint64) {
	out, errOut, err := all.run("", "endpoint", "health", "-w", "json")
	var hs []jsonEndpointHealth
	if jerr := json.Unmarshal([]byte(out), &hs); err != nil || jerr != nil || len(hs) != len(spec.Members) {
		t.Errorf("endpoint health -w json: exit %v, decode %v\nstdout:\n%s\nstderr:\n%s", err, jerr, out, errOut)
	}
	for _, h := range hs {
		if _, ok := idOf[h.Endpoint]; !ok || !h.Health || h.Error != "" || h.Took == "" {
			t.Errorf("endpoint health: %+v", h)
		}
	}
	out, errOut, err = all.run("", "endpoint", "health")
	healthRe := regexp.MustCompile(`^(http://127\.0\.0\.1:\d+) is healthy: successfully committed proposal: took = \S+$`)
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	var healthy []string
	for _, l := range lines {
		if m := healthRe.FindStringSubmatch(l); m != nil {
			healthy = append(healthy, m[1])
		}
	}
	slices.Sort(healthy)
	if eps := slices.Sorted(slices.Values(spec.Endpoints())); err != nil || !slices.Equal(healthy, eps) {
		t.Errorf("endpoint health: exit %v, healthy %v, want %v\nstdout:\n%s\nstderr:\n%s", err, healthy, eps, out, errOut)
	}
}

// checkTable parses an etcdctl -w table rendering (borders of +---+, cells
// between |) and compares its header and rows.
func checkTable(t *testing.T, what, out string, header []string, rows [][]string) {
	t.Helper()
	var cells [][]string
	border := 0
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "+-") && strings.HasSuffix(l, "-+"):
			border++
		case strings.HasPrefix(l, "|") && strings.HasSuffix(l, "|"):
			var row []string
			for _, c := range strings.Split(strings.Trim(l, "|"), "|") {
				row = append(row, strings.TrimSpace(c))
			}
			cells = append(cells, row)
		default:
			t.Errorf("%s: unexpected line %q", what, l)
		}
	}
	want := append([][]string{header}, rows...)
	if border != 3 || !slices.EqualFunc(cells, want, slices.Equal) {
		t.Errorf("%s: %d borders, cells %q, want %q\n%s", what, border, cells, want, out)
	}
}
