package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// tableColumn returns the cells of the column named header in a table that
// ensemblectl printed.
func ctlColumn(t *testing.T, out, header string) []string {
	t.Helper()
	var col = -1
	var cells []string
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		parts := strings.Split(line, "|")
		for i := range parts {
			parts[i] = strings.TrimSpace(parts[i])
		}
		if col < 0 {
			for i, p := range parts {
				if p == header {
					col = i
				}
			}
			if col < 0 {
				t.Fatalf("table has no column %q:\n%s", header, out)
			}
			continue
		}
		cells = append(cells, parts[col])
	}
	return cells
}

func ctlCountCells(cells []string, v string) int {
	n := 0
	for _, c := range cells {
		if c == v {
			n++
		}
	}
	return n
}

var ctlMemberAdded = regexp.MustCompile(`^Member ([0-9a-f ]{16}) added as learner to cluster ([0-9a-f ]{16})\n`)

func TestCtlMemberAndEndpoint(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)
	c.Leader(t)

	out := e.ok("", "member", "list")
	if strings.Count(out, "\n") != 3 || strings.Count(out, ", started, m") != 3 || strings.Count(out, ", false\n") != 3 {
		t.Fatalf("member list printed:\n%s", out)
	}
	out = e.ok("", "-w", "table", "member", "list")
	if names := ctlColumn(t, out, "NAME"); strings.Join(slices.Sorted(slices.Values(names)), ",") != "m1,m2,m3" {
		t.Fatalf("member list -w table names %q:\n%s", names, out)
	}
	var ml struct {
		Header struct {
			ClusterID uint64 `json:"cluster_id"`
		} `json:"header"`
		Members []struct {
			ID         uint64   `json:"ID"`
			Name       string   `json:"name"`
			PeerURLs   []string `json:"peerURLs"`
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	out = e.ok("", "-w", "json", "member", "list")
	if err := json.Unmarshal([]byte(out), &ml); err != nil || len(ml.Members) != 3 || ml.Header.ClusterID == 0 ||
		ml.Members[0].ID == 0 || len(ml.Members[0].PeerURLs) != 1 {
		t.Fatalf("member list -w json: %s (%v)", out, err)
	}

	// The status table covers every member, found through the one endpoint
	// given, and shows exactly one leader.
	one := e
	one.flags = []string{"--endpoints", c.Spec.Members[1].ClientURL, "--dial-timeout", "5s", "--command-timeout", "10s"}
	out = one.ok("", "-w", "table", "endpoint", "status")
	if eps := ctlColumn(t, out, "ENDPOINT"); len(eps) != 3 {
		t.Fatalf("endpoint status -w table has %d rows:\n%s", len(eps), out)
	}
	if n := ctlCountCells(ctlColumn(t, out, "IS LEADER"), "true"); n != 1 {
		t.Fatalf("endpoint status -w table shows %d leaders:\n%s", n, out)
	}
	for _, col := range []string{"RAFT TERM", "RAFT INDEX", "DB SIZE", "LATENCY"} {
		for _, cell := range ctlColumn(t, out, col) {
			if cell == "" || cell == "0" {
				t.Fatalf("endpoint status -w table: empty %s:\n%s", col, out)
			}
		}
	}
	out = e.ok("", "endpoint", "status")
	if strings.Count(out, "\n") != 3 || strings.Count(out, ", true, false, ") != 1 {
		t.Fatalf("endpoint status printed:\n%s", out)
	}
	var st []struct {
		Endpoint string
		Status   struct {
			Header struct {
				MemberID uint64 `json:"member_id"`
			} `json:"header"`
			Leader    uint64 `json:"leader"`
			RaftTerm  uint64 `json:"raftTerm"`
			RaftIndex uint64 `json:"raftIndex"`
			DbSize    int64  `json:"dbSize"`
		}
		Latency string
	}
	out = e.ok("", "-w", "json", "endpoint", "status")
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st) != 3 {
		t.Fatalf("endpoint status -w json: %s (%v)", out, err)
	}
	leaders := 0
	for _, s := range st {
		if s.Status.Leader == s.Status.Header.MemberID {
			leaders++
		}
		if s.Status.RaftTerm == 0 || s.Status.RaftIndex == 0 || s.Status.DbSize == 0 || s.Latency == "" {
			t.Fatalf("endpoint status -w json: %s", out)
		}
	}
	if leaders != 1 {
		t.Fatalf("endpoint status -w json shows %d leaders: %s", leaders, out)
	}
	out = e.ok("", "endpoint", "health")
	if strings.Count(out, " is healthy: successfully committed proposal: took = ") != 3 {
		t.Fatalf("endpoint health printed:\n%s", out)
	}
	out = e.ok("", "-w", "table", "endpoint", "health")
	if n := ctlCountCells(ctlColumn(t, out, "HEALTH"), "true"); n != 3 {
		t.Fatalf("endpoint health -w table:\n%s", out)
	}

	// Grow: add a learner, start it with the flags member add printed,
	// promote it once it has caught up, update it, remove it.
	ports := framework.FreePorts(t, 3)
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	out = e.ok("", "member", "add", "m4", "--peer-urls", peer, "--learner")
	m := ctlMemberAdded.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("member add printed:\n%s", out)
	}
	id := strings.TrimSpace(m[1])
	start := strings.Index(out, "ensemble ")
	if start < 0 {
		t.Fatalf("member add does not say how to start the member:\n%s", out)
	}
	args := strings.Fields(strings.ReplaceAll(out[start:], "\\\n", " "))[1:]
	args = append(args,
		"--data-dir", filepath.Join(t.TempDir(), "m4.ensemble"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-zk-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]),
		"--initial-cluster-token", c.Spec.Token, "--heartbeat-interval", "20", "--election-timeout", "200")
	m4 := &framework.Process{Bin: binary, Args: args, Log: filepath.Join(t.TempDir(), "m4.log")}
	if err := m4.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m4.Kill()
		if t.Failed() {
			t.Logf("--- log of m4 ---\n%s", m4.Output())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		stdout, stderr, code := e.run("", "member", "promote", id)
		if code == 0 {
			if !strings.HasPrefix(stdout, fmt.Sprintf("Member %16s promoted in cluster ", id)) {
				t.Fatalf("member promote printed %q", stdout)
			}
			break
		}
		if !strings.Contains(stderr, "in sync with leader") || time.Now().After(deadline) {
			t.Fatalf("member promote: exit %d, %s", code, stderr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.fails(1, "can only promote a learner member", "member", "promote", id)
	out = e.ok("", "member", "update", id, "--peer-urls", peer)
	if !strings.HasPrefix(out, fmt.Sprintf("Member %16s updated in cluster ", id)) {
		t.Fatalf("member update printed %q", out)
	}
	// A new member publishes its client URLs through the log once it has
	// started, as in etcd; until then it has no endpoint to ask.
	deadline = time.Now().Add(10 * time.Second)
	for {
		_, _, code := e.run("", "-w", "table", "endpoint", "status")
		if code == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	out = e.ok("", "-w", "table", "endpoint", "status")
	if eps := ctlColumn(t, out, "ENDPOINT"); len(eps) != 4 || ctlCountCells(ctlColumn(t, out, "IS LEADER"), "true") != 1 ||
		ctlCountCells(ctlColumn(t, out, "IS LEARNER"), "false") != 4 {
		t.Fatalf("endpoint status -w table after the promotion:\n%s", out)
	}
	out = e.ok("", "member", "remove", id)
	if !strings.HasPrefix(out, fmt.Sprintf("Member %16s removed from cluster ", id)) {
		t.Fatalf("member remove printed %q", out)
	}
	e.fails(1, "member not found", "member", "remove", id)
	if out := e.ok("", "member", "list"); strings.Count(out, "\n") != 3 {
		t.Fatalf("member list after the removal:\n%s", out)
	}

	// A member that is down: its row says so, and the command fails.
	down := (c.Leader(t) + 1) % 3
	c.Kill(down)
	short := e
	short.flags = []string{"--endpoints", strings.Join(c.Spec.Endpoints(), ","), "--dial-timeout", "1s", "--command-timeout", "5s"}
	stdout, stderr, code := short.run("", "-w", "table", "endpoint", "status")
	if code != 1 || !strings.HasPrefix(stderr, "Error: 1 of 3 members did not report their status") || strings.Count(stderr, "\n") != 1 {
		t.Fatalf("endpoint status with a member down: exit %d, stderr %q", code, stderr)
	}
	if errs := ctlColumn(t, stdout, "ERRORS"); len(errs) != 3 || !strings.Contains(strings.Join(errs, ""), c.Spec.Members[down].ClientURL) {
		t.Fatalf("endpoint status with a member down:\n%s", stdout)
	}
	stdout, stderr, code = short.run("", "endpoint", "health")
	if code != 1 || !strings.Contains(stderr, "unhealthy cluster") || strings.Count(stdout, " is healthy") != 2 || strings.Count(stdout, " is unhealthy") != 1 {
		t.Fatalf("endpoint health with a member down: exit %d\n%s%s", code, stdout, stderr)
	}
}

func TestCtlMaintenance(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	for i := range 50 {
		if _, err := cli.Put(framework.Ctx(t), fmt.Sprintf("m/%02d", i), strings.Repeat("v", 100)); err != nil {
			t.Fatal(err)
		}
	}

	// Snapshot: the file ends with the database's SHA-256, and the printed
	// checksum is the whole file's.
	one := e
	one.flags = []string{"--endpoints", c.Spec.Members[0].ClientURL, "--dial-timeout", "5s"}
	file := filepath.Join(t.TempDir(), "backup.db")
	out := one.ok("", "snapshot", "save", file)
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := regexp.MustCompile(`^Snapshot saved at ` + regexp.QuoteMeta(file) + ` \([0-9.]+ [kMG]?B, revision \d+\)\nSHA-256: ` + hex.EncodeToString(sum[:]) + "\n$")
	if !want.MatchString(out) {
		t.Fatalf("snapshot save printed %q (file sha256 %x)", out, sum)
	}
	db := data[:len(data)-sha256.Size]
	if dbSum := sha256.Sum256(db); len(data)%512 != sha256.Size || !bytes.Equal(dbSum[:], data[len(db):]) {
		t.Fatalf("saved snapshot of %d bytes does not end with its database's sha256", len(data))
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Fatalf("snapshot save left its temporary file: %v", err)
	}
	// What it saved restores.
	fresh := framework.NewClusterSpec(t, 3, t.TempDir())
	if stdout, stderr, code := runEnsemble(t, restoreArgs(file, fresh, 0)...); code != 0 {
		t.Fatalf("restore of the saved snapshot: exit %d\n%s%s", code, stdout, stderr)
	}
	var res struct {
		Path     string `json:"path"`
		Size     int64  `json:"size"`
		Revision int64  `json:"revision"`
		SHA256   string `json:"sha256"`
	}
	out = one.ok("", "-w", "json", "snapshot", "save", file)
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Path != file || res.Revision == 0 || len(res.SHA256) != 64 {
		t.Fatalf("snapshot save -w json: %s (%v)", out, err)
	}
	if fi, err := os.Stat(file); err != nil || fi.Size() != res.Size {
		t.Fatalf("snapshot save -w json says %d bytes, the file has %v (%v)", res.Size, fi, err)
	}
	e.fails(2, "exactly one endpoint", "snapshot", "save", file)

	// Defragmentation: each of --endpoints, or every member with --cluster.
	out = e.ok("", "defrag")
	if strings.Count(out, "Finished defragmenting etcd member[") != 3 {
		t.Fatalf("defrag printed:\n%s", out)
	}
	out = one.ok("", "defrag", "--cluster")
	for _, ep := range c.Spec.Endpoints() {
		if !strings.Contains(out, "Finished defragmenting etcd member["+ep+"]. took ") {
			t.Fatalf("defrag --cluster printed:\n%s", out)
		}
	}

	// Alarms: raised here through the API, listed, felt, and disarmed.
	ctlExpect(t, e, "", "alarm", "list")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	victim := ml.Members[0].ID
	if _, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{
		Action: pb.AlarmRequest_ACTIVATE, MemberID: victim, Alarm: pb.AlarmType_NOSPACE,
	}); err != nil {
		t.Fatal(err)
	}
	alarm := fmt.Sprintf("memberID:%d alarm:NOSPACE\n", victim)
	ctlExpect(t, e, alarm, "alarm", "list")
	out = e.ok("", "-w", "table", "alarm", "list")
	if !strings.Contains(out, fmt.Sprintf("| %x | NOSPACE |", victim)) {
		t.Fatalf("alarm list -w table:\n%s", out)
	}
	e.fails(1, "space exceeded", "put", "k", "v")
	stdout, stderr, code := e.run("", "endpoint", "health")
	if code != 1 || !strings.Contains(stdout, "active alarm(s): NOSPACE") || !strings.Contains(stderr, "unhealthy cluster") {
		t.Fatalf("endpoint health with an alarm: exit %d\n%s%s", code, stdout, stderr)
	}
	ctlExpect(t, e, alarm, "alarm", "disarm")
	ctlExpect(t, e, "", "alarm", "list")
	ctlExpect(t, e, "OK\n", "put", "k", "v")
}
