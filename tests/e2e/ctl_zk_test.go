package e2e

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

func TestCtlZK(t *testing.T) {
	c := framework.StartProcesses(t, binary, framework.NewClusterSpec(t, 3, t.TempDir()))
	e := newCtl(t, c)

	ctlExpect(t, e, "Created /app\n", "zk", "create", "/app")
	ctlExpect(t, e, "Created /app/config\n", "zk", "create", "/app/config", `{"a":1}`)
	ctlExpect(t, e, "{\"a\":1}\n", "zk", "get", "/app/config")
	e.fails(1, "/app: zk: node already exists", "zk", "create", "/app")
	e.fails(1, "/nope/child: zk: node does not exist", "zk", "create", "/nope/child")

	ctlExpect(t, e, "Set /app/config (version 1)\n", "zk", "set", "/app/config", "v2")
	e.fails(1, "/app/config: zk: version conflict", "zk", "set", "-v", "0", "/app/config", "v3")
	ctlExpect(t, e, "Set /app/config (version 2)\n", "zk", "set", "-v", "1", "/app/config", "v3")
	out := e.ok("", "zk", "get", "-s", "/app/config")
	if !strings.HasPrefix(out, "v3\ncZxid = 0x") || !strings.Contains(out, "\ndataVersion = 2\n") || !strings.Contains(out, "\ndataLength = 2\n") {
		t.Fatalf("zk get -s printed:\n%s", out)
	}
	out = e.ok("", "zk", "stat", "/app")
	if !strings.Contains(out, "\nnumChildren = 1\n") || !strings.Contains(out, "\nephemeralOwner = 0x0\n") {
		t.Fatalf("zk stat printed:\n%s", out)
	}
	var got struct {
		Path string `json:"path"`
		Data []byte `json:"data"`
		Stat struct {
			Version     int32 `json:"version"`
			Mzxid       int64 `json:"mzxid"`
			NumChildren int32 `json:"numChildren"`
		} `json:"stat"`
	}
	out = e.ok("", "-w", "json", "zk", "get", "/app/config")
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Path != "/app/config" || string(got.Data) != "v3" ||
		got.Stat.Version != 2 || got.Stat.Mzxid == 0 {
		t.Fatalf("zk get -w json: %s (%v)", out, err)
	}

	// Sequential nodes get ZooKeeper's ten-digit suffix.
	seq := regexp.MustCompile(`^Created (/app/job-\d{10})\n$`)
	m1 := seq.FindStringSubmatch(e.ok("", "zk", "create", "-s", "/app/job-", "x"))
	m2 := seq.FindStringSubmatch(e.ok("", "zk", "create", "-s", "/app/job-"))
	if m1 == nil || m2 == nil || m1[1] >= m2[1] {
		t.Fatalf("zk create -s printed %q then %q", m1, m2)
	}
	job1, job2 := strings.TrimPrefix(m1[1], "/app/"), strings.TrimPrefix(m2[1], "/app/")
	ctlExpect(t, e, "config\n"+job1+"\n"+job2+"\n", "zk", "ls", "/app")
	ctlExpect(t, e, "", "zk", "ls", "/app/config")
	e.ok("", "zk", "create", "/app/config/deep")
	ctlExpect(t, e, "/app\n├── config\n│   └── deep\n├── "+job1+"\n└── "+job2+"\n", "zk", "tree", "/app")
	ctlExpect(t, e, "/app\n├── config\n├── "+job1+"\n└── "+job2+"\n", "zk", "tree", "--depth", "1", "/app")
	if out := e.ok("", "zk", "tree"); !strings.HasPrefix(out, "/\n") || !strings.Contains(out, "── app\n") {
		t.Fatalf("zk tree of the whole namespace:\n%s", out)
	}
	var tree struct {
		Path     string `json:"path"`
		Children []struct {
			Path     string `json:"path"`
			Children []struct {
				Path string `json:"path"`
			} `json:"children"`
		} `json:"children"`
	}
	out = e.ok("", "-w", "json", "zk", "tree", "/app")
	if err := json.Unmarshal([]byte(out), &tree); err != nil || tree.Path != "/app" || len(tree.Children) != 3 ||
		tree.Children[0].Path != "/app/config" || len(tree.Children[0].Children) != 1 || tree.Children[0].Children[0].Path != "/app/config/deep" {
		t.Fatalf("zk tree -w json: %s (%v)", out, err)
	}

	// An ephemeral node lives as long as the command that created it.
	eph := e.start("zk", "create", "-e", "/app/eph", "here")
	eph.waitLine("Created /app/eph")
	out = e.ok("", "zk", "stat", "/app/eph")
	if strings.Contains(out, "\nephemeralOwner = 0x0\n") || !strings.Contains(out, "\nephemeralOwner = 0x") {
		t.Fatalf("zk stat of an ephemeral node:\n%s", out)
	}
	if code := eph.stop(); code != 0 {
		t.Fatalf("zk create -e stopped by SIGINT exited %d:\n%s", code, eph.output())
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, stderr, code := e.run("", "zk", "stat", "/app/eph")
		if code == 1 && strings.Contains(stderr, "node does not exist") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the ephemeral node outlived its session: exit %d, %s", code, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Removal: a node with children needs -r.
	e.fails(1, "/app: zk: node has children", "zk", "rm", "/app")
	e.fails(1, "version conflict", "zk", "rm", "-v", "7", "/app/"+job1)
	ctlExpect(t, e, "Removed /app/"+job1+"\n", "zk", "rm", "/app/"+job1)
	ctlExpect(t, e, "Removed /app and 3 nodes below it\n", "zk", "rm", "-r", "/app")
	e.fails(1, "/app: zk: node does not exist", "zk", "ls", "/app")
	e.fails(1, "/app: zk: node does not exist", "zk", "rm", "-r", "/app")

	// The servers may come from the environment.
	env := ectl{t: t, bin: e.bin, env: []string{"ENSEMBLE_ZK_SERVERS=" + strings.Join(c.Spec.ZKAddrs(), ",")}}
	ctlExpect(t, env, "Created /from-env\n", "zk", "create", "/from-env", "x")
	ctlExpect(t, env, "x\n", "zk", "get", "/from-env")
}
