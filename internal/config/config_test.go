package config

import (
	"bytes"
	"errors"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"
)

func urls(t *testing.T, ss ...string) []url.URL {
	t.Helper()
	out := make([]url.URL, 0, len(ss))
	for _, s := range ss {
		u, err := url.Parse(s)
		if err != nil {
			t.Fatalf("url.Parse(%q): %v", s, err)
		}
		out = append(out, *u)
	}
	return out
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ensemble.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func mustParse(t *testing.T, args, env []string) *Config {
	t.Helper()
	c, err := ParseWithEnv(args, env, nil)
	if err != nil {
		t.Fatalf("ParseWithEnv(%q, %q): %v", args, env, err)
	}
	return c
}

// parseErr parses, insists on an error of the given class and a one-line
// message containing every want, and returns the message.
func parseErr(t *testing.T, args, env []string, kind error, want ...string) string {
	t.Helper()
	c, err := ParseWithEnv(args, env, nil)
	if err == nil {
		t.Fatalf("ParseWithEnv(%q, %q) = %+v, want an error", args, env, c)
	}
	if !errors.Is(err, kind) {
		t.Errorf("ParseWithEnv(%q): error %q is not %v", args, err, kind)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") {
		t.Errorf("ParseWithEnv(%q): error spans lines: %q", args, msg)
	}
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("ParseWithEnv(%q): error %q does not contain %q", args, msg, w)
		}
	}
	return msg
}

func defaultWant(t *testing.T) *Config {
	return &Config{
		Name:                     "default",
		DataDir:                  "default.ensemble",
		ListenClientURLs:         urls(t, "http://127.0.0.1:2379"),
		AdvertiseClientURLs:      urls(t, "http://127.0.0.1:2379"),
		ListenPeerURLs:           urls(t, "http://127.0.0.1:2380"),
		InitialAdvertisePeerURLs: urls(t, "http://127.0.0.1:2380"),
		InitialCluster:           []Member{{Name: "default", PeerURLs: urls(t, "http://127.0.0.1:2380")}},
		InitialClusterState:      "new",
		InitialClusterToken:      "ensemble-cluster",
		HeartbeatInterval:        100 * time.Millisecond,
		ElectionTimeout:          1000 * time.Millisecond,
		SnapshotCount:            10000,
		MaxRequestBytes:          1572864,
		MaxTxnOps:                128,
		QuotaBackendBytes:        8 << 30,
		ListenZKAddr:             "127.0.0.1:2181",
		ZKTickTime:               2000 * time.Millisecond,
		ZKMaxBuffer:              1048575,
		ZK4LWWhitelist:           []string{"srvr", "ruok", "isro", "mntr"},
		LogLevel:                 slog.LevelInfo,
	}
}

func TestDefault(t *testing.T) {
	want := defaultWant(t)
	d := Default()
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("Default() = %+v\nwant %+v", d, want)
	}
	if err := d.Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
	if got := mustParse(t, nil, nil); !reflect.DeepEqual(got, want) {
		t.Fatalf("ParseWithEnv(nil) = %+v\nwant %+v", got, want)
	}
	// Callers may edit what they get; that must not leak into later calls.
	d.InitialCluster[0].PeerURLs[0].Host = "changed"
	d.AdvertiseClientURLs[0].Host = "changed"
	if !reflect.DeepEqual(Default(), want) {
		t.Fatal("Default() shares state between calls")
	}
	if d.ListenClientURLs[0].Host == "changed" {
		t.Fatal("derived advertise URLs alias the listen URLs")
	}
}

// allValues sets every setting to something other than its default.
func allValues() [][2]string {
	return [][2]string{
		{"name", "n1"},
		{"data-dir", "/var/lib/ens"},
		{"listen-client-urls", "http://10.0.0.1:12379,https://127.0.0.1:12380"},
		{"advertise-client-urls", "http://n1.example:12379"},
		{"listen-peer-urls", "http://0.0.0.0:12390"},
		{"initial-advertise-peer-urls", "http://n1.example:12390"},
		{"initial-cluster", "n1=http://n1.example:12390,n2=http://n2.example:12390"},
		{"initial-cluster-state", "existing"},
		{"initial-cluster-token", "tok"},
		{"heartbeat-interval", "50"},
		{"election-timeout", "500"},
		{"snapshot-count", "7"},
		{"max-request-bytes", "4096"},
		{"max-txn-ops", "9"},
		{"quota-backend-bytes", "1048576"},
		{"listen-zk-addr", "0.0.0.0:12181"},
		{"zk-tick-time", "500"},
		{"zk-max-buffer", "4096"},
		{"zk-4lw-whitelist", "ruok,stat"},
		{"log-level", "debug"},
	}
}

func allWant(t *testing.T) *Config {
	return &Config{
		Name:                     "n1",
		DataDir:                  "/var/lib/ens",
		ListenClientURLs:         urls(t, "http://10.0.0.1:12379", "https://127.0.0.1:12380"),
		AdvertiseClientURLs:      urls(t, "http://n1.example:12379"),
		ListenPeerURLs:           urls(t, "http://0.0.0.0:12390"),
		InitialAdvertisePeerURLs: urls(t, "http://n1.example:12390"),
		InitialCluster: []Member{
			{Name: "n1", PeerURLs: urls(t, "http://n1.example:12390")},
			{Name: "n2", PeerURLs: urls(t, "http://n2.example:12390")},
		},
		InitialClusterState: "existing",
		InitialClusterToken: "tok",
		HeartbeatInterval:   50 * time.Millisecond,
		ElectionTimeout:     500 * time.Millisecond,
		SnapshotCount:       7,
		MaxRequestBytes:     4096,
		MaxTxnOps:           9,
		QuotaBackendBytes:   1048576,
		ListenZKAddr:        "0.0.0.0:12181",
		ZKTickTime:          500 * time.Millisecond,
		ZKMaxBuffer:         4096,
		ZK4LWWhitelist:      []string{"ruok", "stat"},
		LogLevel:            slog.LevelDebug,
	}
}

func TestEveryFlagParsed(t *testing.T) {
	covered := make(map[string]bool)
	var eq, sep []string
	for _, kv := range allValues() {
		covered[kv[0]] = true
		eq = append(eq, "--"+kv[0]+"="+kv[1])
		sep = append(sep, "--"+kv[0], kv[1])
	}
	for _, s := range specs() {
		if !covered[s.name] {
			t.Errorf("allValues does not cover --%s", s.name)
		}
	}
	want := allWant(t)
	for _, args := range [][]string{eq, sep} {
		if got := mustParse(t, args, nil); !reflect.DeepEqual(got, want) {
			t.Errorf("ParseWithEnv(%q) = %+v\nwant %+v", args, got, want)
		}
	}
	// A single dash works too, as with every Go flag set.
	if got := mustParse(t, []string{"-name", "x"}, nil); got.Name != "x" {
		t.Errorf("-name x: Name = %q", got.Name)
	}
}

func TestDerivedDefaults(t *testing.T) {
	c := mustParse(t, []string{"--name", "n7", "--listen-client-urls", "http://127.0.0.1:3379",
		"--listen-peer-urls", "http://127.0.0.1:3380,http://[::1]:3380"}, nil)
	if c.DataDir != "n7.ensemble" {
		t.Errorf("DataDir = %q, want n7.ensemble", c.DataDir)
	}
	if !reflect.DeepEqual(c.AdvertiseClientURLs, urls(t, "http://127.0.0.1:3379")) {
		t.Errorf("AdvertiseClientURLs = %v", c.AdvertiseClientURLs)
	}
	peers := urls(t, "http://127.0.0.1:3380", "http://[::1]:3380")
	if !reflect.DeepEqual(c.InitialAdvertisePeerURLs, peers) {
		t.Errorf("InitialAdvertisePeerURLs = %v", c.InitialAdvertisePeerURLs)
	}
	if want := []Member{{Name: "n7", PeerURLs: peers}}; !reflect.DeepEqual(c.InitialCluster, want) {
		t.Errorf("InitialCluster = %+v, want %+v", c.InitialCluster, want)
	}
	// An explicitly empty value asks for the derived default, as in etcd.
	c = mustParse(t, []string{"--name", "n8", "--data-dir="}, nil)
	if c.DataDir != "n8.ensemble" {
		t.Errorf("empty --data-dir: DataDir = %q", c.DataDir)
	}
}

func TestInitialClusterRepeatedName(t *testing.T) {
	c := mustParse(t, []string{
		"--name", "a",
		"--initial-advertise-peer-urls", "http://10.0.0.1:2381,http://10.0.0.1:2380",
		"--initial-cluster", "a=http://10.0.0.1:2380, b=http://10.0.0.2:2380,a=http://10.0.0.1:2381,c=http://10.0.0.3:2380",
	}, nil)
	want := []Member{
		{Name: "a", PeerURLs: urls(t, "http://10.0.0.1:2380", "http://10.0.0.1:2381")},
		{Name: "b", PeerURLs: urls(t, "http://10.0.0.2:2380")},
		{Name: "c", PeerURLs: urls(t, "http://10.0.0.3:2380")},
	}
	if !reflect.DeepEqual(c.InitialCluster, want) {
		t.Fatalf("InitialCluster = %+v\nwant %+v", c.InitialCluster, want)
	}
}

func TestConfigFile(t *testing.T) {
	var b strings.Builder
	b.WriteString("# every setting, as etcd's YAML spells them\n")
	for _, kv := range allValues() {
		switch kv[0] {
		case "listen-client-urls":
			// A YAML list is accepted for URL lists, next to comma strings.
			b.WriteString(kv[0] + ":\n  - http://10.0.0.1:12379\n  - https://127.0.0.1:12380\n")
		case "heartbeat-interval", "election-timeout", "snapshot-count", "max-request-bytes", "max-txn-ops", "quota-backend-bytes":
			b.WriteString(kv[0] + ": " + kv[1] + "\n") // YAML integers
		default:
			b.WriteString(kv[0] + ": '" + kv[1] + "'\n")
		}
	}
	path := writeFile(t, b.String())
	want := allWant(t)
	if got := mustParse(t, []string{"--config-file", path}, nil); !reflect.DeepEqual(got, want) {
		t.Errorf("--config-file: got %+v\nwant %+v", got, want)
	}
	if got := mustParse(t, nil, []string{"ENSEMBLE_CONFIG_FILE=" + path}); !reflect.DeepEqual(got, want) {
		t.Errorf("ENSEMBLE_CONFIG_FILE: got %+v\nwant %+v", got, want)
	}
	// An empty file, or one with only comments, changes nothing.
	for _, text := range []string{"", "# nothing\n", "~\n"} {
		if got := mustParse(t, []string{"--config-file", writeFile(t, text)}, nil); !reflect.DeepEqual(got, defaultWant(t)) {
			t.Errorf("file %q: got %+v, want the defaults", text, got)
		}
	}
}

func TestPrecedence(t *testing.T) {
	path := writeFile(t, "name: from-file\nmax-txn-ops: 20\n")
	env := []string{
		"ENSEMBLE_NAME=from-env",
		"ENSEMBLE_MAX_TXN_OPS=30",
		"ENSEMBLE_SNAPSHOT_COUNT=40",
		"ENSEMBLE_SNAPSHOT_COUNT=41", // the first wins, as with os.Getenv
		"ENSEMBLE_LOG_LEVEL=",        // empty counts as unset
		"ENSEMBLE_NOT_A_FLAG=x",      // other programs' variables are ignored
		"ENSEMBLECTL_ENDPOINTS=x",
		"PATH=/bin",
	}
	cases := []struct {
		args     []string
		env      []string
		name     string
		txnOps   int
		snapshot uint64
	}{
		{nil, nil, "default", 128, 10000},
		{nil, env, "from-env", 30, 40},
		{[]string{"--config-file", path}, env, "from-file", 20, 40},
		{[]string{"--config-file", path, "--name", "from-flag"}, env, "from-flag", 20, 40},
		{[]string{"--name", "from-flag", "--config-file", path, "--max-txn-ops", "50"}, env, "from-flag", 50, 40},
	}
	for _, tc := range cases {
		c := mustParse(t, tc.args, tc.env)
		if c.Name != tc.name || c.MaxTxnOps != tc.txnOps || c.SnapshotCount != tc.snapshot {
			t.Errorf("args %q env %d vars: name %q txn %d snapshot %d, want %q %d %d",
				tc.args, len(tc.env), c.Name, c.MaxTxnOps, c.SnapshotCount, tc.name, tc.txnOps, tc.snapshot)
		}
		if c.LogLevel != slog.LevelInfo {
			t.Errorf("LogLevel = %v, want info", c.LogLevel)
		}
	}
	// Derived defaults follow the winning name.
	if c := mustParse(t, []string{"--config-file", path}, env); c.DataDir != "from-file.ensemble" {
		t.Errorf("DataDir = %q", c.DataDir)
	}
}

func TestValidationErrors(t *testing.T) {
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--name="}, []string{"--name", "must not be empty"}},
		{[]string{"--name=a,b"}, []string{`"a,b"`, "--name"}},
		{[]string{"--heartbeat-interval=0"}, []string{`"0"`, "--heartbeat-interval", "at least 1"}},
		{[]string{"--election-timeout=499", "--heartbeat-interval=100"}, []string{`"499"`, "--election-timeout", "5 times"}},
		{[]string{"--heartbeat-interval=300"}, []string{`"1000"`, "--election-timeout", "5 times --heartbeat-interval (300 ms)"}},
		{[]string{"--election-timeout=50001"}, []string{`"50001"`, "--election-timeout", "at most 50000"}},
		{[]string{"--snapshot-count=0"}, []string{`"0"`, "--snapshot-count"}},
		{[]string{"--max-request-bytes=0"}, []string{`"0"`, "--max-request-bytes"}},
		{[]string{"--max-request-bytes=-1"}, []string{`"-1"`, "--max-request-bytes"}},
		{[]string{"--max-txn-ops=0"}, []string{`"0"`, "--max-txn-ops"}},
		{[]string{"--quota-backend-bytes=-1"}, []string{`"-1"`, "--quota-backend-bytes", "negative"}},
		{[]string{"--initial-cluster-state=old"}, []string{`"old"`, "--initial-cluster-state"}},
		{[]string{"--initial-cluster-token="}, []string{"--initial-cluster-token", "empty"}},
		{[]string{"--listen-client-urls="}, []string{"--listen-client-urls", "at least one URL"}},
		{[]string{"--initial-cluster=other=http://10.0.0.9:2380"},
			[]string{"--initial-cluster", `"other=http://10.0.0.9:2380"`, `--name "default"`}},
		{[]string{"--initial-cluster=default=http://10.0.0.9:2380"},
			[]string{"--initial-cluster", "--initial-advertise-peer-urls", "http://127.0.0.1:2380"}},
		{[]string{"--initial-cluster=default=http://127.0.0.1:2380,b=http://127.0.0.1:2380"},
			[]string{"--initial-cluster", `"b=http://127.0.0.1:2380"`, "twice"}},
		{[]string{"--listen-client-urls=http://127.0.0.1:1,http://127.0.0.1:1"}, []string{"--listen-client-urls", "twice"}},
	}
	for _, tc := range cases {
		parseErr(t, tc.args, nil, ErrInvalid, append([]string{"invalid value"}, tc.want...)...)
	}
	// With state existing the URLs need not match, but the name must be there.
	mustParse(t, []string{"--initial-cluster-state=existing", "--initial-cluster=default=http://10.0.0.9:2380"}, nil)
	parseErr(t, []string{"--initial-cluster-state=existing", "--initial-cluster=x=http://10.0.0.9:2380"}, nil,
		ErrInvalid, "--initial-cluster", `--name "default"`)
	// Election timeout exactly 5 heartbeats and exactly 50 s are accepted.
	mustParse(t, []string{"--heartbeat-interval=200", "--election-timeout=1000"}, nil)
	mustParse(t, []string{"--heartbeat-interval=1000", "--election-timeout=50000"}, nil)
}

func TestUsageErrors(t *testing.T) {
	parseErr(t, []string{"--heartbeat=100"}, nil, ErrUsage, "unknown flag --heartbeat")
	parseErr(t, []string{"--name"}, nil, ErrUsage, "flag --name needs a value")
	parseErr(t, []string{"serve"}, nil, ErrUsage, `unexpected argument "serve"`)
	parseErr(t, []string{"--name", "x", "--", "extra"}, nil, ErrUsage, `unexpected argument "extra"`)
	parseErr(t, []string{"--name", "a", "b"}, nil, ErrUsage, `unexpected argument "b"`)
	parseErr(t, []string{"--version=maybe"}, nil, ErrUsage, `invalid value "maybe" for flag --version: must be true or false`)
	parseErr(t, []string{"---x"}, nil, ErrUsage, "---x")
}

func TestBadURL(t *testing.T) {
	cases := []struct {
		flag, value string
		want        []string
	}{
		{"listen-client-urls", "127.0.0.1:2379", []string{`"127.0.0.1:2379"`}},
		{"listen-client-urls", "localhost:2379", []string{"scheme://host:port"}},
		{"listen-client-urls", "ftp://127.0.0.1:2379", []string{`"ftp://127.0.0.1:2379"`, "http or https"}},
		{"listen-client-urls", "unix://127.0.0.1:2379", []string{"http or https"}},
		{"listen-client-urls", "http://127.0.0.1", []string{"host:port"}},
		{"listen-client-urls", "http://127.0.0.1:99999", []string{"port"}},
		{"listen-client-urls", "http://127.0.0.1:x", []string{`"http://127.0.0.1:x"`}},
		{"listen-client-urls", "http://127.0.0.1:2379/v3", []string{"path"}},
		{"listen-client-urls", "http://127.0.0.1:2379?a=b", []string{"path, query"}},
		{"listen-client-urls", "http://u:p@127.0.0.1:2379", []string{"scheme://host:port"}},
		{"listen-client-urls", "http://:2379", []string{"host"}},
		{"listen-client-urls", "http://example.com:2379", []string{"IP address or localhost"}},
		{"listen-client-urls", "http://127.0.0.1:2379,", []string{"empty URL"}},
		{"listen-client-urls", "http://127.0.0.1:2379,%zz", []string{`"%zz"`, "not a URL"}},
		{"listen-peer-urls", "http//127.0.0.1:2380", []string{"--listen-peer-urls"}},
		{"advertise-client-urls", "http://127.0.0.1:0", []string{"port 0"}},
		{"initial-advertise-peer-urls", "ssh://127.0.0.1:2380", []string{"http or https"}},
		{"initial-cluster", "default", []string{`"default"`, "name=url"}},
		{"initial-cluster", "=http://127.0.0.1:2380", []string{"member name"}},
		{"initial-cluster", "default=127.0.0.1:2380", []string{`"127.0.0.1:2380"`}},
	}
	for _, tc := range cases {
		parseErr(t, []string{"--" + tc.flag, tc.value}, nil, ErrInvalid,
			append([]string{"invalid value", "for flag --" + tc.flag}, tc.want...)...)
	}
	// A hostname is fine where the URL is advertised rather than bound.
	c := mustParse(t, []string{"--advertise-client-urls", "https://db.example:443", "--listen-client-urls", "http://localhost:2379"}, nil)
	if c.AdvertiseClientURLs[0].Scheme != "https" {
		t.Errorf("AdvertiseClientURLs = %v", c.AdvertiseClientURLs)
	}
}

func TestBadDuration(t *testing.T) {
	for _, v := range []string{"abc", "100ms", "1.5", "-5", "", "1e3", "99999999999"} {
		for _, f := range []string{"heartbeat-interval", "election-timeout"} {
			parseErr(t, []string{"--" + f + "=" + v}, nil, ErrInvalid,
				`invalid value "`+v+`" for flag --`+f+": must be a number of milliseconds")
		}
	}
	parseErr(t, []string{"--snapshot-count=-1"}, nil, ErrInvalid, "--snapshot-count", "non-negative integer")
	parseErr(t, []string{"--max-txn-ops=many"}, nil, ErrInvalid, "--max-txn-ops", "integer")
	parseErr(t, []string{"--quota-backend-bytes=8GiB"}, nil, ErrInvalid, "--quota-backend-bytes", `"8GiB"`)
}

func TestPortZero(t *testing.T) {
	// The kernel picks the ports; the advertised URLs left at their default
	// follow the listen URLs, and the server substitutes the bound ports.
	c := mustParse(t, []string{"--listen-client-urls=http://127.0.0.1:0", "--listen-peer-urls=http://127.0.0.1:0"}, nil)
	if c.InitialCluster[0].PeerURLs[0].Port() != "0" || c.AdvertiseClientURLs[0].Port() != "0" {
		t.Errorf("port 0 not carried into derived URLs: %+v", c)
	}
	parseErr(t, []string{"--listen-client-urls=http://127.0.0.1:0", "--advertise-client-urls=http://10.0.0.1:0"},
		nil, ErrInvalid, "--advertise-client-urls", "port 0")
	parseErr(t, []string{"--initial-cluster=default=http://127.0.0.1:2380,b=http://10.0.0.2:0"},
		nil, ErrInvalid, "--initial-cluster", `"b=http://10.0.0.2:0"`, "port 0")
	parseErr(t, []string{"--initial-cluster-state=existing", "--initial-cluster=default=http://127.0.0.1:0"},
		nil, ErrInvalid, "--initial-cluster", "port 0")
}

func TestQuotaAndLogLevel(t *testing.T) {
	if c := mustParse(t, []string{"--quota-backend-bytes=0"}, nil); c.QuotaBackendBytes != DefaultQuotaBackendBytes {
		t.Errorf("quota 0: %d, want %d", c.QuotaBackendBytes, DefaultQuotaBackendBytes)
	}
	levels := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "WARN": slog.LevelWarn, "error": slog.LevelError}
	for v, want := range levels {
		if c := mustParse(t, []string{"--log-level", v}, nil); c.LogLevel != want {
			t.Errorf("--log-level %s: %v", v, c.LogLevel)
		}
	}
	parseErr(t, []string{"--log-level=verbose"}, nil, ErrInvalid, `invalid value "verbose" for flag --log-level`)
}

func TestConfigFileErrors(t *testing.T) {
	cases := []struct {
		text string
		want string
	}{
		{"heartbeat: 100\n", `unknown key "heartbeat"`},
		{"name: a\nname: b\n", `duplicate key "name"`},
		{"- name\n", "must be a mapping"},
		{"name: [a\n", "yaml:"},
		{"name: [a, b]\n", `key "name" must be a single value`},
		{"listen-client-urls:\n  x: y\n", `key "listen-client-urls" must be a comma-separated string or a list`},
		{"config-file: other.yaml\n", `unknown key "config-file"`},
		{"help: true\n", `unknown key "help"`},
		{"version: true\n", `unknown key "version"`},
		{"? [a]\n: b\n", "keys must be flag names"},
	}
	for _, tc := range cases {
		path := writeFile(t, tc.text)
		parseErr(t, []string{"--config-file", path}, nil, ErrConfigFile, "config file "+path+": ", tc.want)
	}
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	msg := parseErr(t, []string{"--config-file=" + missing}, nil, ErrConfigFile, "config file "+missing+": no such file")
	if _, err := ParseWithEnv([]string{"--config-file=" + missing}, nil, nil); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%q does not match fs.ErrNotExist", msg)
	}

	// A value from the file that does not parse or validate names the key.
	path := writeFile(t, "heartbeat-interval: abc\n")
	parseErr(t, []string{"--config-file", path}, nil, ErrInvalid,
		"config file "+path+`: invalid value "abc" for key "heartbeat-interval": must be a number of milliseconds`)
	path = writeFile(t, "election-timeout: 200\n")
	parseErr(t, []string{"--config-file", path}, nil, ErrInvalid,
		"config file "+path+`: invalid value "200" for key "election-timeout": must be at least 5 times`)
	// ...unless a flag overrode it, and then the flag is named.
	parseErr(t, []string{"--config-file", path, "--election-timeout=300"}, nil, ErrInvalid,
		`invalid value "300" for flag --election-timeout`)
}

func TestEnvErrors(t *testing.T) {
	msg := parseErr(t, nil, []string{"ENSEMBLE_HEARTBEAT_INTERVAL=abc"}, ErrInvalid,
		`invalid value "abc" for environment variable ENSEMBLE_HEARTBEAT_INTERVAL: must be a number of milliseconds`)
	if strings.HasPrefix(msg, "config file") {
		t.Errorf("env error blames a file: %q", msg)
	}
	parseErr(t, nil, []string{"ENSEMBLE_MAX_TXN_OPS=0"}, ErrInvalid, "environment variable ENSEMBLE_MAX_TXN_OPS")
	// A flag hides a bad variable.
	mustParse(t, []string{"--heartbeat-interval=100"}, []string{"ENSEMBLE_HEARTBEAT_INTERVAL=abc"})
}

func TestHelp(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "missing.yaml")
	for _, args := range [][]string{{"--help"}, {"-h"}, {"-help"}, {"--name=x", "--help", "--config-file", bad}} {
		var out bytes.Buffer
		c, err := ParseWithEnv(args, []string{"ENSEMBLE_HEARTBEAT_INTERVAL=abc"}, &out)
		if !errors.Is(err, ErrHelp) || c != nil {
			t.Fatalf("ParseWithEnv(%q) = %v, %v; want nil, ErrHelp", args, c, err)
		}
		text := out.String()
		if !strings.HasPrefix(text, "Usage: ensemble [flags]\n") {
			t.Errorf("help does not start with the usage line:\n%s", text)
		}
		for _, g := range []string{"Member:", "Clustering:", "Limits:", "Logging:"} {
			if !strings.Contains(text, "\n"+g+"\n") {
				t.Errorf("help lacks group %q", g)
			}
		}
		for _, s := range specs() {
			i := strings.Index(text, "--"+s.name+" ")
			if i < 0 {
				t.Errorf("help lacks --%s", s.name)
				continue
			}
			line, _, _ := strings.Cut(text[i:], "\n")
			if !strings.Contains(line, "(default ") || !strings.Contains(line, s.help) {
				t.Errorf("help line for --%s lacks its meaning or default: %q", s.name, line)
			}
		}
		for _, f := range []string{"--config-file", "--version", "--help", "ENSEMBLE_DATA_DIR"} {
			if !strings.Contains(text, f) {
				t.Errorf("help lacks %s", f)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	var out bytes.Buffer
	c, err := ParseWithEnv([]string{"--version"}, nil, &out)
	if !errors.Is(err, ErrVersion) || c != nil {
		t.Fatalf("--version = %v, %v; want nil, ErrVersion", c, err)
	}
	for _, w := range []string{"ensemble version " + Version + "\n", runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("version output %q lacks %q", out.String(), w)
		}
	}
}

func TestValidate(t *testing.T) {
	cases := []struct {
		edit func(c *Config)
		want string
	}{
		{func(c *Config) { c.DataDir = "" }, "--data-dir"},
		{func(c *Config) { c.ListenPeerURLs = nil }, "--listen-peer-urls"},
		{func(c *Config) { c.AdvertiseClientURLs = nil }, "--advertise-client-urls"},
		{func(c *Config) { c.HeartbeatInterval = 500 * time.Microsecond }, `"0.5" for flag --heartbeat-interval`},
		{func(c *Config) { c.InitialCluster = nil }, "--initial-cluster"},
		{func(c *Config) { c.InitialCluster = append(c.InitialCluster, c.InitialCluster[0]) }, `member "default" is listed twice`},
		{func(c *Config) { c.InitialCluster = append(c.InitialCluster, Member{Name: "x"}) }, `member "x" has no peer URL`},
		{func(c *Config) { c.InitialCluster = append(c.InitialCluster, Member{PeerURLs: urls(t, "http://h:1")}) }, "names must not be empty"},
		{func(c *Config) { c.LogLevel = slog.Level(2) }, "--log-level"},
	}
	for _, tc := range cases {
		c := Default()
		tc.edit(c)
		err := c.Validate()
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want ErrInvalid mentioning %q", err, tc.want)
		}
	}
	// Quota 0 means the default and is valid in a hand-built Config.
	c := Default()
	c.QuotaBackendBytes = 0
	if err := c.Validate(); err != nil {
		t.Errorf("quota 0: %v", err)
	}
}

func TestZooKeeperFlags(t *testing.T) {
	if c := mustParse(t, []string{"--listen-zk-addr="}, nil); c.ListenZKAddr != "" {
		t.Errorf("--listen-zk-addr= gives %q, want the port disabled", c.ListenZKAddr)
	}
	parseErr(t, []string{"--listen-zk-addr", "2181"}, nil, ErrInvalid, "--listen-zk-addr", "host:port")
	parseErr(t, []string{"--zk-4lw-whitelist", "ruok,kill"}, nil, ErrInvalid, "--zk-4lw-whitelist", `"kill"`)
	parseErr(t, []string{"--zk-max-buffer", "10"}, nil, ErrInvalid, "--zk-max-buffer", "at least 1024")
	parseErr(t, []string{"--zk-tick-time", "0"}, nil, ErrInvalid, "--zk-tick-time", "at least 1 millisecond")
	if c := mustParse(t, []string{"--zk-4lw-whitelist", "*"}, nil); len(c.ZK4LWWhitelist) != 1 || c.ZK4LWWhitelist[0] != "*" {
		t.Errorf("--zk-4lw-whitelist=* gives %v", c.ZK4LWWhitelist)
	}
}
