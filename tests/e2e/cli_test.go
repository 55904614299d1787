package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

// runEnsemble runs the binary to completion in a scratch directory with no
// ENSEMBLE_* variables, and returns stdout, stderr and the exit code (-1 when
// it had to be killed because it did not exit by itself).
func runEnsemble(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	// A regression that starts a server instead of refusing must not write
	// ./default.ensemble into the repository.
	cmd.Dir = t.TempDir()
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ENSEMBLE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case ctx.Err() != nil:
		code = -1
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run ensemble %q: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// hermeticFlags keep a member that a regression lets start off the default
// ports and inside the test's directories; the flags under test come after
// them and so override them.
func hermeticFlags(t *testing.T) []string {
	ports := framework.FreePorts(t, 3)
	return []string{
		"--data-dir", filepath.Join(t.TempDir(), "data"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[0]),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", ports[1]),
		"--listen-zk-addr", fmt.Sprintf("127.0.0.1:%d", ports[2]),
	}
}

func writeYAML(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ensemble.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args func(t *testing.T) []string
		// every string the one error line must contain
		want []string
	}{
		{"not a number", func(*testing.T) []string { return []string{"--heartbeat-interval", "abc"} },
			[]string{"--heartbeat-interval", `"abc"`}},
		{"bad enum", func(*testing.T) []string { return []string{"--initial-cluster-state", "bogus"} },
			[]string{"--initial-cluster-state", `"bogus"`}},
		{"unknown flag", func(*testing.T) []string { return []string{"--no-such-flag"} },
			[]string{"--no-such-flag"}},
		{"unknown flag with value", func(*testing.T) []string { return []string{"--no-such-flag=1"} },
			[]string{"--no-such-flag"}},
		{"missing value", func(*testing.T) []string { return []string{"--snapshot-count"} },
			[]string{"--snapshot-count"}},
		{"election timeout below 5 heartbeats", func(*testing.T) []string {
			return []string{"--election-timeout", "10", "--heartbeat-interval", "100"}
		}, []string{"--election-timeout", `"10"`}},
		{"config file unknown key", func(t *testing.T) []string {
			return []string{"--config-file", writeYAML(t, "name: n1\nno-such-key: 1\n")}
		}, []string{"no-such-key"}},
		{"config file bad value", func(t *testing.T) []string {
			return []string{"--config-file", writeYAML(t, "heartbeat-interval: soon\n")}
		}, []string{"heartbeat-interval", `"soon"`}},
		{"config file missing", func(t *testing.T) []string {
			return []string{"--config-file", filepath.Join(t.TempDir(), "absent.yaml")}
		}, []string{"absent.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			args := append(hermeticFlags(t), tc.args(t)...)
			stdout, stderr, code := runEnsemble(t, args...)
			if code != 2 {
				t.Errorf("ensemble %q: exit code %d, want 2\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
			}
			if stdout != "" {
				t.Errorf("ensemble %q: stdout %q, want nothing", args, stdout)
			}
			line, ok := strings.CutSuffix(stderr, "\n")
			if !ok || line == "" || strings.Contains(line, "\n") {
				t.Fatalf("ensemble %q: stderr is not exactly one line:\n%s", args, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(line, w) {
					t.Errorf("ensemble %q: error %q does not mention %s", args, line, w)
				}
			}
		})
	}
}

func TestHelpAndVersion(t *testing.T) {
	flags := []string{
		"--name", "--data-dir", "--listen-client-urls", "--advertise-client-urls", "--listen-peer-urls",
		"--initial-advertise-peer-urls", "--initial-cluster", "--initial-cluster-token", "--initial-cluster-state",
		"--heartbeat-interval", "--election-timeout", "--snapshot-count", "--max-request-bytes", "--max-txn-ops",
		"--quota-backend-bytes", "--log-level", "--config-file", "--help", "--version",
	}
	for _, arg := range []string{"--help", "-h"} {
		stdout, stderr, code := runEnsemble(t, arg)
		if code != 0 || stderr != "" {
			t.Errorf("ensemble %s: exit code %d, stderr %q", arg, code, stderr)
		}
		for _, f := range flags {
			// Whole flag names only: --initial-cluster must not pass on the
			// strength of --initial-cluster-state.
			if !regexp.MustCompile(regexp.QuoteMeta(f) + `([^-a-z]|$)`).MatchString(stdout) {
				t.Errorf("ensemble %s does not mention %s:\n%s", arg, f, stdout)
			}
		}
		// The defaults an operator most needs to know are shown.
		for _, d := range []string{"100", "1000", "http://127.0.0.1:2379", "http://127.0.0.1:2380"} {
			if !strings.Contains(stdout, d) {
				t.Errorf("ensemble %s does not show the default %s", arg, d)
			}
		}
	}
	stdout, stderr, code := runEnsemble(t, "--version")
	if code != 0 || stderr != "" {
		t.Errorf("ensemble --version: exit code %d, stderr %q", code, stderr)
	}
	if !regexp.MustCompile(`(?m)^ensemble version \d+\.\d+\.\d+\S*$`).MatchString(stdout) {
		t.Errorf("ensemble --version printed %q, want a line \"ensemble version X.Y.Z\"", stdout)
	}
}

func TestConfigFile(t *testing.T) {
	ports := framework.FreePorts(t, 2)
	client := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peer := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	dataDir := filepath.Join(t.TempDir(), "from-file.ensemble")
	// Lists in both spellings the file accepts: a YAML sequence and a
	// comma-separated string.
	path := writeYAML(t, fmt.Sprintf(`# written by TestConfigFile
name: from-file
data-dir: %s
listen-client-urls:
  - %s
advertise-client-urls: %s
listen-peer-urls: [%s]
initial-advertise-peer-urls: %s
initial-cluster: from-file=%s
initial-cluster-token: config-file-test
initial-cluster-state: new
heartbeat-interval: 20
election-timeout: 200
snapshot-count: 500
log-level: warn
`, dataDir, client, client, peer, peer, peer))
	spec := framework.ClusterSpec{
		Raw: true,
		Members: []framework.MemberSpec{{
			Name: "from-file", DataDir: dataDir, ClientURL: client, PeerURL: peer,
			ExtraFlags: []string{"--config-file", path},
		}},
	}
	c := framework.StartProcesses(t, binary, spec)

	cli := framework.NewClient(t, client)
	ctx := framework.Ctx(t)
	put, err := cli.Put(ctx, "configured", "by-file")
	if err != nil {
		t.Fatal(err)
	}
	get, err := cli.Get(ctx, "configured")
	if err != nil || len(get.Kvs) != 1 || string(get.Kvs[0].Value) != "by-file" || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("get after put: %v, %v", get, err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 1 || ml.Members[0].Name != "from-file" ||
		strings.Join(ml.Members[0].PeerURLs, ",") != peer || strings.Join(ml.Members[0].ClientURLs, ",") != client {
		t.Errorf("member list does not reflect the file: %+v", ml.Members)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "member")); err != nil {
		t.Errorf("data-dir from the file not used: %v", err)
	}
	// log-level: warn from the file took effect: the INFO lines of a start are gone.
	if out := c.Procs[0].Output(); strings.Contains(out, "level=INFO") || strings.Contains(out, "level=DEBUG") {
		t.Errorf("log-level warn from the file not applied; log:\n%s", out)
	}
}
