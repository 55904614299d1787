package zk

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"runtime"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"ensemble/internal/mvcc"
	"ensemble/internal/zktree"
)

// zkVersion is the ZooKeeper release whose protocol and behaviour Ensemble
// follows; tools read it from srvr and mntr.
const zkVersion = "3.9.3"

// knownWords are the four-letter words ZooKeeper knows (and reqs, which
// older releases knew). A connection that starts with one gets an answer
// in text instead of a session.
var knownWords = []string{
	"conf", "cons", "crst", "dirs", "dump", "envi", "gtmk", "hash", "icfg", "isro", "mntr",
	"reqs", "ruok", "srst", "srvr", "stat", "stmk", "sysp", "wchc", "wchp", "wchs",
}

// answeredWords are the words Ensemble answers; the others are refused as
// if they were not whitelisted.
var answeredWords = []string{"conf", "cons", "envi", "isro", "mntr", "ruok", "srvr", "stat", "wchs"}

func isFourLetterWord(w string) bool { return slices.Contains(knownWords, w) }

// whitelist turns the configured words into the set answered: "*" is every
// answered word, and srvr is always in, as in ZooKeeper (zkServer.sh
// needs it).
func whitelist(words []string) map[string]bool {
	set := map[string]bool{"srvr": true}
	for _, w := range words {
		w = strings.TrimSpace(w)
		if w == "*" {
			for _, a := range answeredWords {
				set[a] = true
			}
			continue
		}
		if slices.Contains(answeredWords, w) {
			set[w] = true
		}
	}
	return set
}

// fourLetterWord answers a four-letter word and lets the caller close the
// connection, as ZooKeeper does.
func (s *Server) fourLetterWord(c *conn, word string) {
	c.br.Discard(4)
	c.stats.received.Add(1)
	var b bytes.Buffer
	if !s.words[word] {
		fmt.Fprintf(&b, "%s is not executed because it is not in the whitelist.\n", word)
	} else {
		s.lg.Debug("zk: four-letter word", "word", word, "remote", c.nc.RemoteAddr().String())
		switch word {
		case "ruok":
			b.WriteString("imok")
		case "isro":
			// Ensemble has no read-only mode.
			b.WriteString("rw")
		case "srvr":
			s.writeServerStats(&b, false)
		case "stat":
			s.writeServerStats(&b, true)
		case "mntr":
			s.writeMonitor(&b)
		case "conf":
			s.writeConf(&b)
		case "cons":
			for _, x := range s.clients() {
				x.dumpInfo(&b, false)
				b.WriteString("\n")
			}
			b.WriteString("\n")
		case "envi":
			s.writeEnv(&b)
		case "wchs":
			conns, paths, total := s.watches.summary()
			fmt.Fprintf(&b, "%d connections watching %d paths\nTotal watches:%d\n", conns, paths, total)
		}
	}
	c.nc.SetWriteDeadline(time.Now().Add(s.maxTimeout()))
	c.nc.Write(b.Bytes())
	c.stats.sent.Add(1)
}

// fullVersion is ZooKeeper's Version.getFullVersion in the form that
// srvr parsers (go-zookeeper's FLWSrvr among them) accept.
func (s *Server) fullVersion() string {
	v := zkVersion + "-ensemble"
	if ev := s.b.Info().Version; ev != "" {
		v += "-" + strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
				return r
			}
			return '-'
		}, ev)
	}
	return v + ", built on " + buildTime().UTC().Format("01/02/2006 15:04") + " GMT"
}

// buildTime is the time of the commit the binary was built from, if the
// build recorded it.
func buildTime() time.Time {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, st := range bi.Settings {
			if st.Key == "vcs.time" {
				if t, err := time.Parse(time.RFC3339, st.Value); err == nil {
					return t
				}
			}
		}
	}
	return time.Unix(0, 0)
}

// javaDouble prints a latency average the way ZooKeeper's stats do: at
// most four decimals, and always a decimal point.
func javaDouble(v float64) string {
	s := strconv.FormatFloat(float64(int64(v*10000+0.5))/10000, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// clients are the connections that have a session: not the one asking,
// nor others still in their handshake or answering a four-letter word,
// which tools that parse cons (go-zookeeper's FLWCons) cannot read.
func (s *Server) clients() []*conn {
	return slices.DeleteFunc(s.connections(), func(x *conn) bool { return x.sessionID.Load() == 0 })
}

// writeServerStats writes srvr's answer, or with clients stat's.
func (s *Server) writeServerStats(b *bytes.Buffer, clients bool) {
	info := s.b.Info()
	st := s.Stats()
	fmt.Fprintf(b, "Zookeeper version: %s\n", s.fullVersion())
	if clients {
		b.WriteString("Clients:\n")
		for _, x := range s.clients() {
			x.dumpInfo(b, true)
			b.WriteString("\n")
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(b, "Latency min/avg/max: %d/%s/%d\n", st.MinLatency, javaDouble(st.AvgLatency), st.MaxLatency)
	fmt.Fprintf(b, "Received: %d\n", st.PacketsReceived)
	fmt.Fprintf(b, "Sent: %d\n", st.PacketsSent)
	fmt.Fprintf(b, "Connections: %d\n", st.Connections)
	fmt.Fprintf(b, "Outstanding: %d\n", st.Outstanding)
	fmt.Fprintf(b, "Zxid: 0x%x\n", st.NotifiedZxid)
	fmt.Fprintf(b, "Mode: %s\n", info.Mode)
	fmt.Fprintf(b, "Node count: %d\n", s.nodeCount())
}

// writeMonitor writes mntr's answer: tab-separated zk_* lines.
func (s *Server) writeMonitor(b *bytes.Buffer) {
	info := s.b.Info()
	st := s.Stats()
	line := func(k string, v any) { fmt.Fprintf(b, "zk_%s\t%v\n", k, v) }
	line("version", s.fullVersion())
	line("server_state", info.Mode)
	line("uptime", time.Since(s.started).Milliseconds())
	line("avg_latency", javaDouble(st.AvgLatency))
	line("max_latency", st.MaxLatency)
	line("min_latency", st.MinLatency)
	line("packets_received", st.PacketsReceived)
	line("packets_sent", st.PacketsSent)
	line("num_alive_connections", st.Connections)
	line("outstanding_requests", st.Outstanding)
	line("znode_count", s.nodeCount())
	line("watch_count", st.Watches)
	line("ephemerals_count", s.ephemeralsCount())
	if open, maxFDs, ok := fileDescriptors(); ok {
		line("open_file_descriptor_count", open)
		line("max_file_descriptor_count", maxFDs)
	}
	if info.Mode == "leader" {
		line("learners", max(info.Members-1, 0))
	}
}

// writeConf writes conf's answer: the settings that ZooKeeper's dumpConf
// prints and that Ensemble has.
func (s *Server) writeConf(b *bytes.Buffer) {
	if port, ok := s.clientPort(); ok {
		fmt.Fprintf(b, "clientPort=%d\n", port)
	}
	b.WriteString("secureClientPort=-1\n")
	fmt.Fprintf(b, "tickTime=%d\n", s.cfg.TickTime.Milliseconds())
	b.WriteString("maxClientCnxns=0\n")
	fmt.Fprintf(b, "minSessionTimeout=%d\n", s.minTimeout().Milliseconds())
	fmt.Fprintf(b, "maxSessionTimeout=%d\n", s.maxTimeout().Milliseconds())
	fmt.Fprintf(b, "serverId=%d\n", s.b.Info().ID)
	fmt.Fprintf(b, "jute.maxbuffer=%d\n", s.cfg.MaxBuffer)
}

// clientPort is the port of a listener, the lowest if there are several.
func (s *Server) clientPort() (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	port, ok := 0, false
	for ln := range s.listeners {
		if a, isTCP := ln.Addr().(*net.TCPAddr); isTCP && (!ok || a.Port < port) {
			port, ok = a.Port, true
		}
	}
	return port, ok
}

// writeEnv writes envi's answer, with Go's facts where ZooKeeper has Java's.
func (s *Server) writeEnv(b *bytes.Buffer) {
	b.WriteString("Environment:\n")
	kv := func(k, v string) { fmt.Fprintf(b, "%s=%s\n", k, v) }
	kv("zookeeper.version", s.fullVersion())
	if h, err := os.Hostname(); err == nil {
		kv("host.name", h)
	}
	kv("go.version", runtime.Version())
	kv("os.name", runtime.GOOS)
	kv("os.arch", runtime.GOARCH)
	kv("os.cpus", strconv.Itoa(runtime.NumCPU()))
	if u := os.Getenv("USER"); u != "" {
		kv("user.name", u)
	}
	if h, err := os.UserHomeDir(); err == nil {
		kv("user.home", h)
	}
	if d, err := os.Getwd(); err == nil {
		kv("user.dir", d)
	}
	info := s.b.Info()
	kv("member.id", fmt.Sprintf("%x", info.ID))
	kv("member.clientURLs", strings.Join(info.ClientURLs, ","))
	kv("member.peerURLs", strings.Join(info.PeerURLs, ","))
	kv("cluster.members", strconv.Itoa(info.Members))
}

// dumpInfo writes the connection as ZooKeeper's dumpConnectionInfo does.
func (c *conn) dumpInfo(b *bytes.Buffer, brief bool) {
	st := c.stats.snapshot()
	fmt.Fprintf(b, " /%s[1](queued=%d,recved=%d,sent=%d", c.nc.RemoteAddr(), st.outstanding, st.received, st.sent)
	if id := c.sessionID.Load(); !brief && id != 0 {
		fmt.Fprintf(b, ",sid=0x%x,lop=%s,est=%d,to=%d", id, st.lastOp, st.estMs, c.timeoutMs.Load())
		if st.lastCxid >= 0 {
			fmt.Fprintf(b, ",lcxid=0x%x", st.lastCxid)
		}
		lo, avg, hi := st.lat.get()
		fmt.Fprintf(b, ",lzxid=0x%x,lresp=%d,llat=%d,minlat=%d,avglat=%d,maxlat=%d",
			uint64(st.lastZxid), st.lastResp, st.lastLat, lo, int64(avg), hi)
	}
	b.WriteString(")")
}

// nodeCount counts the znodes, from the key index alone.
func (s *Server) nodeCount() int64 {
	return countNodes(s.b.KV())
}

// nodeKeyPrefix starts the keys of znodes, as zktree lays them out (its
// keys.go); sessions and the TTL index live beside them under
// zktree.Prefix. TestFourLetterWords notices if the layout moves.
const nodeKeyPrefix = zktree.Prefix + "n/"

// countNodes counts the znodes kept in kv.
func countNodes(kv *mvcc.Store) int64 {
	key := []byte(nodeKeyPrefix)
	end := prefixEnd(key)
	res, err := kv.Range(key, end, mvcc.RangeOptions{CountOnly: true})
	if err != nil {
		return 0
	}
	return int64(res.Count)
}

// prefixEnd is the end of the key range of every key starting with p.
func prefixEnd(p []byte) []byte {
	end := bytes.Clone(p)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// ephemeralsCount counts the ephemeral nodes of every session.
func (s *Server) ephemeralsCount() int {
	l := s.b.Lessor()
	if l == nil {
		return 0
	}
	n := 0
	for _, id := range l.Leases() {
		n += len(zktree.Ephemerals(l, int64(id), ""))
	}
	return n
}
