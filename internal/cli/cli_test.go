package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"testing"
)

// run runs ensemblectl in-process with env variables from vars.
func run(t *testing.T, vars map[string]string, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := Run(context.Background(), args, Env{
		Stdin: strings.NewReader(stdin), Stdout: &stdout, Stderr: &stderr,
		Getenv: func(k string) string { return vars[k] },
	})
	return stdout.String(), stderr.String(), code
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// Usage errors are refused before anything is sent: one line on stderr,
// exit code 2, nothing on stdout.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args  []string
		stdin string
		want  string
	}{
		{[]string{"nosuchverb"}, "", `unknown command "nosuchverb"`},
		{[]string{"lease", "nosuchverb"}, "", `unknown command "nosuchverb" for "ensemblectl lease"`},
		{[]string{"zk", "mkdir", "/a"}, "", `unknown command "mkdir"`},
		{[]string{"get"}, "", "takes a key"},
		{[]string{"get", "a", "b", "c"}, "", "takes a key"},
		{[]string{"get", "k", "--no-such-flag"}, "", "unknown flag: --no-such-flag"},
		{[]string{"get", "k", "--prefix", "--from-key"}, "", "cannot be used together"},
		{[]string{"get", "k", "--sort-by", "AGE"}, "", `"AGE"`},
		{[]string{"get", "k", "--consistency", "x"}, "", `--consistency`},
		{[]string{"get", "k", "-w", "table", "--print-value-only"}, "", "--print-value-only"},
		{[]string{"-w", "yaml", "get", "k"}, "", `"yaml"`},
		{[]string{"--dial-timeout", "0s", "get", "k"}, "", "--dial-timeout"},
		{[]string{"--dial-timeout", "soon", "get", "k"}, "", "--dial-timeout"},
		{[]string{"put"}, "", "takes a key"},
		{[]string{"put", "k", "v", "--lease", "xyz"}, "", `"xyz"`},
		{[]string{"put", "k", "v", "--ignore-value"}, "", "--ignore-value"},
		{[]string{"del", "a", "b", "--prefix"}, "", "range end"},
		{[]string{"txn", "extra"}, "", "no arguments"},
		{[]string{"txn"}, "mod(\"k\") ~ \"1\"\n", "txn line 1"},
		{[]string{"watch"}, "", "takes a key"},
		{[]string{"watch", "a", "b", "--prefix"}, "", "--prefix"},
		{[]string{"watch", "-i", "k"}, "", "stdin"},
		{[]string{"lease", "grant"}, "", "TTL"},
		{[]string{"lease", "grant", "0"}, "", "TTL"},
		{[]string{"lease", "revoke", "nothex"}, "", "lease ID"},
		{[]string{"lease", "timetolive"}, "", "lease ID"},
		{[]string{"member", "add", "m4"}, "", "--peer-urls"},
		{[]string{"member", "remove", "zz"}, "", "member ID"},
		{[]string{"member", "update", "abc"}, "", "--peer-urls"},
		{[]string{"member", "promote"}, "", "member ID"},
		{[]string{"snapshot", "save"}, "", "file"},
		{[]string{"--endpoints", "a:1,b:2", "snapshot", "save", "f"}, "", "exactly one endpoint"},
		{[]string{"compaction", "x"}, "", "revision"},
		{[]string{"lock"}, "", "lock name"},
		{[]string{"lock", "--ttl", "0", "x"}, "", "--ttl"},
		{[]string{"elect", "x"}, "", "proposal"},
		{[]string{"elect", "-l", "x", "p"}, "", "only the election name"},
		{[]string{"zk", "ls"}, "", "one path"},
		{[]string{"zk", "ls", "relative"}, "", "start with /"},
		{[]string{"zk", "get", "/a/"}, "", "end with /"},
		{[]string{"zk", "create"}, "", "a path"},
		{[]string{"zk", "rm", "-r", "/"}, "", "whole namespace"},
		{[]string{"zk", "rm", "-r", "-v", "3", "/a"}, "", "-v"},
		{[]string{"zk", "tree", "/a", "/b"}, "", "at most one path"},
	}
	for _, tc := range cases {
		stdout, stderr, code := run(t, nil, tc.stdin, tc.args...)
		if code != ExitUsage {
			t.Errorf("%q: exit code %d, want %d (stderr %q)", tc.args, code, ExitUsage, stderr)
		}
		if stdout != "" {
			t.Errorf("%q: stdout %q, want nothing", tc.args, stdout)
		}
		line, ok := strings.CutSuffix(stderr, "\n")
		if !ok || strings.Contains(line, "\n") || !strings.HasPrefix(line, "Error: ") {
			t.Errorf("%q: stderr is not one \"Error: \" line: %q", tc.args, stderr)
			continue
		}
		if !strings.Contains(line, tc.want) {
			t.Errorf("%q: error %q does not mention %q", tc.args, line, tc.want)
		}
	}
}

// An endpoint that does not answer fails the command within the dial
// timeout, with one line that names the endpoint; the environment supplies
// endpoints the flags do not.
func TestUnreachableEndpoint(t *testing.T) {
	dead := deadAddr(t)
	for _, tc := range []struct {
		vars map[string]string
		args []string
	}{
		{nil, []string{"--endpoints", dead, "--dial-timeout", "200ms", "get", "k"}},
		{map[string]string{EnvEndpoints: dead}, []string{"--dial-timeout", "200ms", "put", "k", "v"}},
		{map[string]string{EnvEndpoints: "flag-wins.invalid:1"}, []string{"--endpoints", dead, "--dial-timeout", "200ms", "member", "list"}},
		{map[string]string{EnvZKServers: dead}, []string{"--dial-timeout", "200ms", "zk", "ls", "/"}},
	} {
		stdout, stderr, code := run(t, tc.vars, "", tc.args...)
		if code != ExitError || stdout != "" {
			t.Errorf("%q: exit %d, stdout %q", tc.args, code, stdout)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, dead) || !strings.Contains(stderr, "200ms") {
			t.Errorf("%q: stderr %q, want one line naming %s and the timeout", tc.args, stderr, dead)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	stdout, stderr, code := run(t, nil, "", "--help")
	if code != 0 || stderr != "" {
		t.Fatalf("--help: exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"--endpoints", "--dial-timeout", "--command-timeout", "--write-out", "--zk-servers",
		"get", "put", "del", "txn", "watch", "lease", "member", "endpoint", "snapshot", "compaction", "defrag",
		"alarm", "lock", "elect", "zk"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help does not mention %s", want)
		}
	}
	stdout, _, code = run(t, nil, "", "version")
	if code != 0 || !strings.HasPrefix(stdout, "ensemblectl version ") {
		t.Fatalf("version: exit %d, %q", code, stdout)
	}
}

func TestEnvList(t *testing.T) {
	c := &ctl{env: Env{Getenv: func(string) string { return " a:1, b:2 ,," }}}
	if got := c.envList(EnvEndpoints, "d"); strings.Join(got, "|") != "a:1|b:2" {
		t.Fatalf("envList = %q", got)
	}
	c.env.Getenv = func(string) string { return "" }
	if got := c.envList(EnvEndpoints, "d"); strings.Join(got, "|") != "d" {
		t.Fatalf("envList default = %q", got)
	}
}
