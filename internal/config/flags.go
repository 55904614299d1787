package config

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// spec describes one setting: its flag name (also the YAML key and, upper
// cased, the environment variable), its help line and how a text value is
// stored into a Config. One table serves the flag set, the config file, the
// environment, Default and the help text, so they cannot drift apart.
type spec struct {
	name  string
	group string
	hint  string // value placeholder in the help text
	def   string // default as text; "" means derived from other settings
	show  string // default as shown in the help text, when def is not it
	help  string
	list  bool // a config file may give a YAML list instead of a comma string
	set   func(c *Config, v string) error
}

const (
	groupMember     = "Member"
	groupClustering = "Clustering"
	groupLimits     = "Limits"
	groupZooKeeper  = "ZooKeeper"
	groupLogging    = "Logging"
	groupOther      = "Other"
)

// specs returns the settings in help order. It is a function rather than a
// package variable so that nothing at package level can be mutated.
func specs() []spec {
	return []spec{
		{name: "name", group: groupMember, hint: "string", def: "default", show: `"default"`,
			help: "human-readable name of this member, unique in the cluster",
			set:  func(c *Config, v string) error { c.Name = v; return nil }},
		{name: "data-dir", group: groupMember, hint: "path", show: `"${name}.ensemble"`,
			help: "directory holding the write-ahead log, snapshots and the backend",
			set:  func(c *Config, v string) error { c.DataDir = v; return nil }},
		{name: "listen-client-urls", group: groupMember, hint: "urls", def: "http://127.0.0.1:2379", list: true,
			help: "URLs to serve clients on (port 0: the kernel picks one)",
			set:  urlsSetter(func(c *Config) *[]url.URL { return &c.ListenClientURLs })},
		{name: "listen-peer-urls", group: groupMember, hint: "urls", def: "http://127.0.0.1:2380", list: true,
			help: "URLs to serve other members on (port 0: the kernel picks one)",
			set:  urlsSetter(func(c *Config) *[]url.URL { return &c.ListenPeerURLs })},
		{name: "heartbeat-interval", group: groupMember, hint: "ms", def: "100",
			help: "time between leader heartbeats, in milliseconds",
			set:  msSetter(func(c *Config) *time.Duration { return &c.HeartbeatInterval })},
		{name: "election-timeout", group: groupMember, hint: "ms", def: "1000",
			help: "time a follower waits for a heartbeat before calling an election, in milliseconds",
			set:  msSetter(func(c *Config) *time.Duration { return &c.ElectionTimeout })},
		{name: "snapshot-count", group: groupMember, hint: "n", def: "10000",
			help: "applied entries between two snapshots",
			set: func(c *Config, v string) error {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					return errors.New("must be a non-negative integer")
				}
				c.SnapshotCount = n
				return nil
			}},

		{name: "advertise-client-urls", group: groupClustering, hint: "urls", show: "--listen-client-urls", list: true,
			help: "client URLs this member tells clients and other members about",
			set:  urlsSetter(func(c *Config) *[]url.URL { return &c.AdvertiseClientURLs })},
		{name: "initial-advertise-peer-urls", group: groupClustering, hint: "urls", show: "--listen-peer-urls", list: true,
			help: "peer URLs this member tells the other members about",
			set:  urlsSetter(func(c *Config) *[]url.URL { return &c.InitialAdvertisePeerURLs })},
		{name: "initial-cluster", group: groupClustering, hint: "name=url,...", show: `"${name}=${initial-advertise-peer-urls}"`, list: true,
			help: "members to bootstrap with; a name may repeat for several URLs",
			set: func(c *Config, v string) error {
				ms, err := parseCluster(v)
				c.InitialCluster = ms
				return err
			}},
		{name: "initial-cluster-state", group: groupClustering, hint: "new|existing", def: "new",
			help: "new to bootstrap a cluster, existing to join one",
			set:  func(c *Config, v string) error { c.InitialClusterState = v; return nil }},
		{name: "initial-cluster-token", group: groupClustering, hint: "string", def: "ensemble-cluster", show: `"ensemble-cluster"`,
			help: "token that makes the cluster and member IDs of a new cluster unique",
			set:  func(c *Config, v string) error { c.InitialClusterToken = v; return nil }},

		{name: "max-request-bytes", group: groupLimits, hint: "bytes", def: "1572864",
			help: "largest client request accepted",
			set:  intSetter(func(c *Config) *int { return &c.MaxRequestBytes }, "must be an integer number of bytes")},
		{name: "max-txn-ops", group: groupLimits, hint: "n", def: "128",
			help: "most operations in one transaction",
			set:  intSetter(func(c *Config) *int { return &c.MaxTxnOps }, "must be an integer")},
		{name: "quota-backend-bytes", group: groupLimits, hint: "bytes", def: "0", show: "8589934592, 8 GiB",
			help: "backend size that raises the NOSPACE alarm; 0 means the default",
			set: func(c *Config, v string) error {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return errors.New("must be an integer number of bytes")
				}
				c.QuotaBackendBytes = n
				return nil
			}},

		{name: "listen-zk-addr", group: groupZooKeeper, hint: "host:port", def: "127.0.0.1:2181",
			help: "address to serve ZooKeeper clients on (port 0: the kernel picks one); empty disables it",
			set: func(c *Config, v string) error {
				if v == "" {
					c.ListenZKAddr = ""
					return nil
				}
				if _, _, err := net.SplitHostPort(v); err != nil {
					return errors.New("must be host:port, or empty to disable the ZooKeeper port")
				}
				c.ListenZKAddr = v
				return nil
			}},
		{name: "zk-tick-time", group: groupZooKeeper, hint: "ms", def: "2000",
			help: "ZooKeeper's tickTime: session timeouts are negotiated into [2, 20] ticks, in milliseconds",
			set:  msSetter(func(c *Config) *time.Duration { return &c.ZKTickTime })},
		{name: "zk-max-buffer", group: groupZooKeeper, hint: "bytes", def: "1048575",
			help: "ZooKeeper's jute.maxbuffer: largest ZooKeeper packet; a larger one closes its connection",
			set:  intSetter(func(c *Config) *int { return &c.ZKMaxBuffer }, "must be an integer number of bytes")},
		{name: "zk-4lw-whitelist", group: groupZooKeeper, hint: "words", def: "srvr,ruok,isro,mntr", list: true,
			help: "four-letter words answered on the ZooKeeper port (ruok srvr stat mntr conf cons envi wchs isro, or *)",
			set: func(c *Config, v string) error {
				c.ZK4LWWhitelist = nil
				for _, w := range strings.Split(v, ",") {
					w = strings.TrimSpace(w)
					if w == "" {
						continue
					}
					if w != "*" && !slices.Contains(FourLetterWords, w) {
						return fmt.Errorf("unknown four-letter word %q", w)
					}
					c.ZK4LWWhitelist = append(c.ZK4LWWhitelist, w)
				}
				return nil
			}},

		{name: "log-level", group: groupLogging, hint: "debug|info|warn|error", def: "info",
			help: "least severe level of log records written",
			set: func(c *Config, v string) error {
				switch strings.ToLower(v) {
				case "debug":
					c.LogLevel = slog.LevelDebug
				case "info":
					c.LogLevel = slog.LevelInfo
				case "warn":
					c.LogLevel = slog.LevelWarn
				case "error":
					c.LogLevel = slog.LevelError
				default:
					return errors.New("must be debug, info, warn or error")
				}
				return nil
			}},
	}
}

func urlsSetter(field func(*Config) *[]url.URL) func(*Config, string) error {
	return func(c *Config, v string) error {
		us, err := parseURLs(v)
		*field(c) = us
		return err
	}
}

func msSetter(field func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		// 32 bits of milliseconds cannot overflow a Duration; the validated
		// range is far smaller anyway.
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return errors.New("must be a number of milliseconds")
		}
		*field(c) = time.Duration(n) * time.Millisecond
		return nil
	}
}

func intSetter(field func(*Config) *int, reason string) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil {
			return errors.New(reason)
		}
		*field(c) = n
		return nil
	}
}

// parseURLs splits a comma-separated list. It checks syntax only; Validate
// applies the rules that depend on what the URLs are for. An empty string
// yields nil, which means "derive the default" where there is one.
func parseURLs(v string) ([]url.URL, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	parts := strings.Split(v, ",")
	us := make([]url.URL, 0, len(parts))
	for _, p := range parts {
		u, err := parseURL(strings.TrimSpace(p))
		if err != nil {
			return nil, err
		}
		us = append(us, u)
	}
	return us, nil
}

func parseURL(s string) (url.URL, error) {
	if s == "" {
		return url.URL{}, &badValue{value: s, reason: "empty URL in list"}
	}
	u, err := url.Parse(s)
	if err != nil {
		reason := err.Error()
		var ue *url.Error
		if errors.As(err, &ue) {
			reason = ue.Err.Error()
		}
		return url.URL{}, &badValue{value: s, reason: "not a URL: " + reason}
	}
	if u.Scheme == "" || u.Host == "" {
		return url.URL{}, &badValue{value: s, reason: "must be of the form scheme://host:port"}
	}
	return *u, nil
}

// parseCluster parses name=url,name=url. Entries with the same name are one
// member with several URLs; members keep the order of their first entry.
func parseCluster(v string) ([]Member, error) {
	if strings.TrimSpace(v) == "" {
		return nil, nil
	}
	var ms []Member
	index := make(map[string]int)
	for _, p := range strings.Split(v, ",") {
		p = strings.TrimSpace(p)
		name, raw, ok := strings.Cut(p, "=")
		if !ok {
			return nil, &badValue{value: p, reason: "must be name=url"}
		}
		if name == "" {
			return nil, &badValue{value: p, reason: "member name must not be empty"}
		}
		u, err := parseURL(raw)
		if err != nil {
			return nil, err
		}
		i, seen := index[name]
		if !seen {
			i = len(ms)
			index[name] = i
			ms = append(ms, Member{Name: name})
		}
		ms[i].PeerURLs = append(ms[i].PeerURLs, u)
	}
	return ms, nil
}

// envName is the environment variable that sets flag key.
func envName(key string) string {
	return "ENSEMBLE_" + strings.ToUpper(strings.ReplaceAll(key, "-", "_"))
}
