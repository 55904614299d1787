// Package config turns command-line flags, an optional YAML config file and
// ENSEMBLE_* environment variables into one validated Config for the server.
//
// Precedence, highest first: command-line flags, the --config-file, the
// ENSEMBLE_<FLAG_NAME> environment variables, the embedded defaults. Unlike
// etcd, which refuses a config file mixed with flags, a flag given on the
// command line simply overrides the same key in the file.
//
// Defaults that depend on other settings (--data-dir from --name, the
// advertised URLs from the listen URLs, --initial-cluster from --name and the
// advertised peer URLs) are derived after all sources are merged, so that
// "--name n1" alone yields a coherent single-member cluster.
package config

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Version is the release printed by --version and reported to clients.
const Version = "0.1.0"

// DefaultQuotaBackendBytes is the backend size quota used when
// --quota-backend-bytes is 0.
const DefaultQuotaBackendBytes int64 = 8 << 30

// maxElectionTimeout is etcd's upper bound; longer timeouts make failover so
// slow that they are almost certainly a unit mistake.
const maxElectionTimeout = 50000 * time.Millisecond

// Member is one entry of the initial cluster: a member name and the peer URLs
// it is reached at.
type Member struct {
	Name     string
	PeerURLs []url.URL
}

// Config is the validated configuration the server consumes.
type Config struct {
	Name    string
	DataDir string

	ListenClientURLs         []url.URL
	AdvertiseClientURLs      []url.URL
	ListenPeerURLs           []url.URL
	InitialAdvertisePeerURLs []url.URL

	InitialCluster      []Member // in the order given
	InitialClusterState string   // "new" or "existing"
	InitialClusterToken string

	HeartbeatInterval time.Duration
	ElectionTimeout   time.Duration

	SnapshotCount   uint64
	MaxRequestBytes int
	MaxTxnOps       int
	// QuotaBackendBytes of 0 means DefaultQuotaBackendBytes; Parse always
	// stores the effective value.
	QuotaBackendBytes int64

	// ListenZKAddr is the ZooKeeper client address; empty: no ZooKeeper port.
	ListenZKAddr string
	// ZKTickTime is ZooKeeper's tickTime, the unit of session timeouts.
	ZKTickTime time.Duration
	// ZKMaxBuffer is ZooKeeper's jute.maxbuffer.
	ZKMaxBuffer int
	// ZK4LWWhitelist are the four-letter words answered; "*" is all.
	ZK4LWWhitelist []string

	LogLevel slog.Level
}

// FourLetterWords are the ZooKeeper four-letter words Ensemble can answer.
var FourLetterWords = []string{"ruok", "srvr", "stat", "mntr", "conf", "cons", "envi", "wchs", "isro"}

// Default returns the embedded defaults: a single-member cluster named
// "default" on 127.0.0.1 (clients on 2379, peers on 2380) with its data in
// ./default.ensemble.
func Default() *Config {
	c := &Config{}
	for _, s := range specs() {
		if err := s.set(c, s.def); err != nil {
			// The defaults are constants; a failure is a programming error
			// that the package tests catch.
			panic(fmt.Sprintf("config: default for --%s: %v", s.name, err))
		}
	}
	c.derive()
	return c
}

// derive fills the settings whose defaults depend on other settings.
func (c *Config) derive() {
	if c.DataDir == "" {
		c.DataDir = c.Name + ".ensemble"
	}
	if len(c.AdvertiseClientURLs) == 0 {
		c.AdvertiseClientURLs = slices.Clone(c.ListenClientURLs)
	}
	if len(c.InitialAdvertisePeerURLs) == 0 {
		c.InitialAdvertisePeerURLs = slices.Clone(c.ListenPeerURLs)
	}
	if len(c.InitialCluster) == 0 {
		c.InitialCluster = []Member{{Name: c.Name, PeerURLs: slices.Clone(c.InitialAdvertisePeerURLs)}}
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
}

// Validate checks c against the rules etcd applies to the same flags. The
// error names the flag at fault and the offending value on one line.
func (c *Config) Validate() error {
	if c.Name == "" {
		return invalid("name", c.Name, "must not be empty")
	}
	if strings.ContainsAny(c.Name, "=,") {
		return invalid("name", c.Name, `must not contain "=" or ","`)
	}
	if c.DataDir == "" {
		return invalid("data-dir", c.DataDir, "must not be empty")
	}
	if err := checkURLs("listen-client-urls", c.ListenClientURLs, urlListen); err != nil {
		return err
	}
	adv := urlAdvertise
	if sameURLs(c.AdvertiseClientURLs, c.ListenClientURLs) {
		// The default: the server advertises the ports it bound.
		adv = urlAdvertiseListen
	}
	if err := checkURLs("advertise-client-urls", c.AdvertiseClientURLs, adv); err != nil {
		return err
	}
	if err := checkURLs("listen-peer-urls", c.ListenPeerURLs, urlListen); err != nil {
		return err
	}
	adv = urlAdvertise
	if sameURLs(c.InitialAdvertisePeerURLs, c.ListenPeerURLs) {
		adv = urlAdvertiseListen
	}
	if err := checkURLs("initial-advertise-peer-urls", c.InitialAdvertisePeerURLs, adv); err != nil {
		return err
	}
	if c.InitialClusterState != "new" && c.InitialClusterState != "existing" {
		return invalid("initial-cluster-state", c.InitialClusterState, `must be "new" or "existing"`)
	}
	if err := c.checkInitialCluster(); err != nil {
		return err
	}
	if c.InitialClusterToken == "" {
		return invalid("initial-cluster-token", c.InitialClusterToken, "must not be empty")
	}
	if c.HeartbeatInterval < time.Millisecond {
		return invalid("heartbeat-interval", msString(c.HeartbeatInterval), "must be at least 1 millisecond")
	}
	if c.ElectionTimeout < 5*c.HeartbeatInterval {
		return invalid("election-timeout", msString(c.ElectionTimeout),
			fmt.Sprintf("must be at least 5 times --heartbeat-interval (%s ms)", msString(c.HeartbeatInterval)))
	}
	if c.ElectionTimeout > maxElectionTimeout {
		return invalid("election-timeout", msString(c.ElectionTimeout),
			fmt.Sprintf("must be at most %s milliseconds", msString(maxElectionTimeout)))
	}
	if c.SnapshotCount < 1 {
		return invalid("snapshot-count", strconv.FormatUint(c.SnapshotCount, 10), "must be at least 1")
	}
	if c.MaxRequestBytes <= 0 {
		return invalid("max-request-bytes", strconv.Itoa(c.MaxRequestBytes), "must be greater than 0")
	}
	if c.MaxTxnOps <= 0 {
		return invalid("max-txn-ops", strconv.Itoa(c.MaxTxnOps), "must be greater than 0")
	}
	if c.QuotaBackendBytes < 0 {
		return invalid("quota-backend-bytes", strconv.FormatInt(c.QuotaBackendBytes, 10), "must not be negative")
	}
	if c.ZKTickTime < time.Millisecond {
		return invalid("zk-tick-time", msString(c.ZKTickTime), "must be at least 1 millisecond")
	}
	if c.ZKMaxBuffer < 1024 {
		return invalid("zk-max-buffer", strconv.Itoa(c.ZKMaxBuffer), "must be at least 1024 bytes")
	}
	switch c.LogLevel {
	case slog.LevelDebug, slog.LevelInfo, slog.LevelWarn, slog.LevelError:
	default:
		return invalid("log-level", c.LogLevel.String(), "must be debug, info, warn or error")
	}
	return nil
}

func (c *Config) checkInitialCluster() error {
	const key = "initial-cluster"
	seen := make(map[string]bool)
	names := make(map[string]bool, len(c.InitialCluster))
	var self *Member
	for i := range c.InitialCluster {
		m := &c.InitialCluster[i]
		if m.Name == "" {
			return invalid(key, formatCluster(c.InitialCluster), "member names must not be empty")
		}
		if names[m.Name] {
			return invalid(key, formatCluster(c.InitialCluster), fmt.Sprintf("member %q is listed twice", m.Name))
		}
		names[m.Name] = true
		if len(m.PeerURLs) == 0 {
			return invalid(key, formatCluster(c.InitialCluster), fmt.Sprintf("member %q has no peer URL", m.Name))
		}
		use := urlAdvertise
		if m.Name == c.Name {
			self = m
			if c.InitialClusterState == "new" {
				// Only the member's own entry can follow a kernel-chosen port,
				// and only while it must equal --initial-advertise-peer-urls.
				use = urlAdvertiseListen
			}
		}
		for _, u := range m.PeerURLs {
			if why := checkURL(u, use); why != "" {
				return invalid(key, m.Name+"="+u.String(), why)
			}
			s := u.String()
			if seen[s] {
				return invalid(key, m.Name+"="+s, "peer URL is listed twice")
			}
			seen[s] = true
		}
	}
	if self == nil {
		return invalid(key, formatCluster(c.InitialCluster), fmt.Sprintf("must include this member's --name %q", c.Name))
	}
	if c.InitialClusterState == "new" && !sameURLSet(self.PeerURLs, c.InitialAdvertisePeerURLs) {
		return invalid(key, formatCluster(c.InitialCluster), fmt.Sprintf(
			"member %q has peer URLs %s but --initial-advertise-peer-urls is %s; they must match when --initial-cluster-state is new",
			c.Name, formatURLs(self.PeerURLs), formatURLs(c.InitialAdvertisePeerURLs)))
	}
	return nil
}

// urlUse says what a URL is for, which decides the host and port rules.
type urlUse int

const (
	urlListen          urlUse = iota // bound locally: IP or localhost, port 0 allowed
	urlAdvertise                     // told to others: any host, real port
	urlAdvertiseListen               // advertised but equal to the listen URLs: port 0 allowed
)

func checkURLs(key string, us []url.URL, use urlUse) error {
	if len(us) == 0 {
		return invalid(key, "", "must list at least one URL")
	}
	seen := make(map[string]bool, len(us))
	for _, u := range us {
		s := u.String()
		if why := checkURL(u, use); why != "" {
			return invalid(key, s, why)
		}
		if seen[s] {
			return invalid(key, s, "URL is listed twice")
		}
		seen[s] = true
	}
	return nil
}

// checkURL returns why u is unusable, or "" when it is fine.
func checkURL(u url.URL, use urlUse) string {
	if u.Scheme != "http" && u.Scheme != "https" {
		return "scheme must be http or https"
	}
	if u.Opaque != "" || u.User != nil {
		return "must be of the form scheme://host:port"
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery {
		return "must not have a path, query or fragment"
	}
	host, port, err := net.SplitHostPort(u.Host)
	if err != nil {
		return "must have a host and a port (host:port)"
	}
	if host == "" {
		return "must name a host"
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "port must be a number from 0 to 65535"
	}
	if p == 0 && use == urlAdvertise {
		return "port 0 is only allowed in listen URLs (and in advertised URLs left equal to them)"
	}
	if use == urlListen && host != "localhost" && net.ParseIP(host) == nil {
		return "host must be an IP address or localhost to listen on"
	}
	return ""
}

func sameURLs(a, b []url.URL) bool {
	return slices.EqualFunc(a, b, func(x, y url.URL) bool { return x.String() == y.String() })
}

// sameURLSet compares ignoring order, as etcd does for the member's own
// --initial-cluster entry.
func sameURLSet(a, b []url.URL) bool {
	if len(a) != len(b) {
		return false
	}
	as, bs := urlStrings(a), urlStrings(b)
	slices.Sort(as)
	slices.Sort(bs)
	return slices.Equal(as, bs)
}

func urlStrings(us []url.URL) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].String()
	}
	return out
}

func formatURLs(us []url.URL) string { return strings.Join(urlStrings(us), ",") }

func formatCluster(ms []Member) string {
	var parts []string
	for _, m := range ms {
		for _, u := range m.PeerURLs {
			parts = append(parts, m.Name+"="+u.String())
		}
	}
	return strings.Join(parts, ",")
}

// msString renders a duration the way the flags take it: whole milliseconds,
// with a fraction only when there is one.
func msString(d time.Duration) string {
	if d%time.Millisecond == 0 {
		return strconv.FormatInt(int64(d/time.Millisecond), 10)
	}
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', -1, 64)
}
