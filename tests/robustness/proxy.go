package robustness

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// CutMode says what a cut link does to the bytes that reach it.
type CutMode int

const (
	// Drop closes the connections of a cut pair and refuses new ones, as a
	// peer whose host answers with resets.
	Drop CutMode = iota
	// Blackhole keeps (and accepts) connections but discards every byte in
	// both directions, as a network that silently loses packets: the sender
	// only notices through its own timeouts.
	Blackhole
)

func (m CutMode) String() string {
	if m == Blackhole {
		return "blackhole"
	}
	return "drop"
}

// memberIP is the loopback address member i sends its peer traffic from;
// the proxies tell senders apart by it.
func memberIP(i int) string { return fmt.Sprintf("127.0.0.%d", 10+i) }

// memberOfIP is the inverse of memberIP, -1 for any other address.
func memberOfIP(ip net.IP) int {
	v4 := ip.To4()
	if v4 == nil || v4[0] != 127 || v4[1] != 0 || v4[2] != 0 || v4[3] < 10 {
		return -1
	}
	return int(v4[3]) - 10
}

// Network is the set of TCP proxies standing in front of every member's peer
// port. A member's advertised peer URL is its proxy, so all raft traffic
// between members crosses a proxy, which can cut any pair of members apart
// in both directions.
type Network struct {
	mu      sync.Mutex
	cut     map[[2]int]bool // unordered member pairs, smaller index first
	mode    CutMode
	proxies map[int]*proxy
	closed  bool
	wg      sync.WaitGroup
}

// NewNetwork returns a network with no proxies and no cuts.
func NewNetwork() *Network {
	return &Network{cut: map[[2]int]bool{}, proxies: map[int]*proxy{}}
}

func pair(a, b int) [2]int {
	if a > b {
		a, b = b, a
	}
	return [2]int{a, b}
}

// AddProxy listens on a fresh 127.0.0.1 port in front of member i, whose peer
// listener is target, and returns the proxy's address.
func (n *Network) AddProxy(i int, target string) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	p := &proxy{net: n, member: i, target: target, ln: ln, links: map[*link]struct{}{}}
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		ln.Close()
		return "", errors.New("robustness: network closed")
	}
	n.proxies[i] = p
	n.wg.Add(1)
	n.mu.Unlock()
	go p.serve()
	return ln.Addr().String(), nil
}

// Partition cuts every member of a from every member of b, in both
// directions, with mode. Cuts accumulate until Heal.
func (n *Network) Partition(mode CutMode, a, b []int) {
	n.mu.Lock()
	n.mode = mode
	for _, x := range a {
		for _, y := range b {
			if x != y {
				n.cut[pair(x, y)] = true
			}
		}
	}
	var victims []*link
	for _, p := range n.proxies {
		for l := range p.links {
			if n.cut[pair(l.from, p.member)] {
				victims = append(victims, l)
			}
		}
	}
	n.mu.Unlock()
	for _, l := range victims {
		if mode == Drop {
			l.close()
		} else {
			l.blackholed.Store(true)
		}
	}
}

// Heal removes every cut. Blackholed connections are closed so that both
// ends redial at once instead of waiting for their own timeouts, as they
// would once a real network came back.
func (n *Network) Heal() {
	n.mu.Lock()
	clear(n.cut)
	var victims []*link
	for _, p := range n.proxies {
		for l := range p.links {
			if l.blackholed.Load() {
				victims = append(victims, l)
			}
		}
	}
	n.mu.Unlock()
	for _, l := range victims {
		l.close()
	}
}

// Cuts describes the current cuts, for logs.
func (n *Network) Cuts() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return fmt.Sprintf("%v %v", n.mode, n.cut)
}

// Close stops every proxy and closes every connection through them.
func (n *Network) Close() {
	n.mu.Lock()
	n.closed = true
	var links []*link
	for _, p := range n.proxies {
		p.ln.Close()
		for l := range p.links {
			links = append(links, l)
		}
	}
	n.mu.Unlock()
	for _, l := range links {
		l.close()
	}
	n.wg.Wait()
}

type proxy struct {
	net    *Network
	member int
	target string
	ln     net.Listener
	links  map[*link]struct{} // guarded by net.mu
}

// link is one proxied connection: from is the sending member (by its source
// address), in the accepted side and out the side dialed to the member.
type link struct {
	from       int
	in         net.Conn
	blackholed atomic.Bool

	mu     sync.Mutex
	out    net.Conn
	closed bool
}

func (l *link) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	out := l.out
	l.mu.Unlock()
	l.in.Close()
	if out != nil {
		out.Close()
	}
}

// setOut attaches the dialed side, or reports that the link was closed
// while dialing.
func (l *link) setOut(c net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	l.out = c
	return true
}

func (p *proxy) serve() {
	defer p.net.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		l := &link{from: memberOfIP(c.RemoteAddr().(*net.TCPAddr).IP), in: c}
		switch p.track(l) {
		case linkRefused:
			c.Close()
			continue
		case netClosed:
			c.Close()
			return
		}
		p.net.wg.Add(1)
		go p.run(l)
	}
}

type trackResult int

const (
	linkTracked trackResult = iota
	linkRefused             // the pair is cut in Drop mode
	netClosed               // the network is closed
)

// track registers a new link, blackholed if its pair is cut. The cut is
// judged under the same lock that Heal and Partition take, so that a link
// accepted while a cut is being healed is never left blackholed for good.
func (p *proxy) track(l *link) trackResult {
	p.net.mu.Lock()
	defer p.net.mu.Unlock()
	if p.net.closed {
		return netClosed
	}
	if p.net.cut[pair(l.from, p.member)] {
		if p.net.mode == Drop {
			return linkRefused
		}
		l.blackholed.Store(true)
	}
	p.links[l] = struct{}{}
	return linkTracked
}

func (p *proxy) run(l *link) {
	defer p.net.wg.Done()
	defer func() {
		l.close()
		p.net.mu.Lock()
		delete(p.links, l)
		p.net.mu.Unlock()
	}()
	out, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		return
	}
	if !l.setOut(out) {
		out.Close()
		return
	}
	done := make(chan struct{}, 2)
	go func() { pump(l, out, l.in); done <- struct{}{} }()
	pump(l, l.in, out)
	l.close()
	<-done
}

// pump copies src to dst until either fails, discarding what it reads while
// the link is blackholed.
func pump(l *link, dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 && !l.blackholed.Load() {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	l.close()
}
