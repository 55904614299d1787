package cli

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/spf13/cobra"
)

// The zk verbs work on the ZooKeeper namespace through the ZooKeeper port
// (--zk-servers), with ZooKeeper's own semantics: versions, ephemeral and
// sequential nodes, children that must be removed before their parent.

// zkParallel bounds the requests tree and rm -r keep in flight on the one
// connection; ZooKeeper answers them in order, so this is pipelining.
const zkParallel = 32

// zkSession is a connected ZooKeeper session.
type zkSession struct {
	conn    *zk.Conn
	lost    chan struct{} // closed when the session expires
	timeout time.Duration // per request
}

// zkQuiet drops go-zookeeper's log lines: ensemblectl reports errors itself.
type zkQuiet struct{}

func (zkQuiet) Printf(string, ...any) {}

// zkConnect opens a session with one of --zk-servers, waiting at most
// --dial-timeout for it.
func (c *ctl) zkConnect(ctx context.Context) (*zkSession, error) {
	servers := c.g.zkServers
	if len(servers) == 0 {
		return nil, usagef("--zk-servers: no server given")
	}
	conn, events, err := zk.Connect(servers, c.g.zkSessionTimeout, zk.WithLogger(zkQuiet{}), zk.WithLogInfo(false))
	if err != nil {
		return nil, fmt.Errorf("cannot connect to ZooKeeper at %s: %w", strings.Join(servers, ","), err)
	}
	s := &zkSession{conn: conn, lost: make(chan struct{}), timeout: c.g.commandTimeout}
	up := make(chan struct{})
	go func() {
		connected := false
		for ev := range events {
			switch ev.State {
			case zk.StateHasSession:
				if !connected {
					connected = true
					close(up)
				}
			case zk.StateExpired, zk.StateAuthFailed:
				if connected {
					close(s.lost)
					connected = false
					// A lost session is reported once; the rest is noise.
					for range events {
					}
					return
				}
			}
		}
	}()
	t := time.NewTimer(c.g.dialTimeout)
	defer t.Stop()
	select {
	case <-up:
		return s, nil
	case <-t.C:
		conn.Close()
		return nil, fmt.Errorf("cannot connect to ZooKeeper at %s within --dial-timeout=%s", strings.Join(servers, ","), c.g.dialTimeout)
	case <-ctx.Done():
		conn.Close()
		return nil, ctx.Err()
	}
}

func (s *zkSession) close() { s.conn.Close() }

// zkCall runs one request, bounded by the command timeout: go-zookeeper's
// requests wait as long as the connection does.
func zkCall[T any](ctx context.Context, s *zkSession, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	t := time.NewTimer(s.timeout)
	defer t.Stop()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-t.C:
		var zero T
		return zero, fmt.Errorf("no answer from ZooKeeper within --command-timeout=%s", s.timeout)
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

// withZK runs f with a session, closed when f returns.
func (c *ctl) withZK(cmd *cobra.Command, f func(ctx context.Context, s *zkSession) error) error {
	s, err := c.zkConnect(cmd.Context())
	if err != nil {
		return err
	}
	defer s.close()
	return f(cmd.Context(), s)
}

func checkZKPath(p string) error {
	if !strings.HasPrefix(p, "/") {
		return usagef("%q is not a ZooKeeper path: paths start with /", p)
	}
	if len(p) > 1 && strings.HasSuffix(p, "/") {
		return usagef("%q is not a ZooKeeper path: paths do not end with /", p)
	}
	return nil
}

// zkErr names the path a ZooKeeper error is about.
func zkErr(p string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", p, err)
}

func zkChild(parent, name string) string {
	if parent == "/" {
		return "/" + name
	}
	return parent + "/" + name
}

func (c *ctl) zkCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "zk",
		Short: "Browse and change the ZooKeeper namespace (through --zk-servers)",
	}
	return group(cmd, c.zkLsCommand(), c.zkTreeCommand(), c.zkStatCommand(), c.zkCreateCommand(),
		c.zkGetCommand(), c.zkSetCommand(), c.zkRmCommand())
}

func pathArg(cmd *cobra.Command, args []string) error {
	if len(args) != 1 {
		return usagef("%s takes one path", cmd.CommandPath())
	}
	return checkZKPath(args[0])
}

func (c *ctl) zkLsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls PATH",
		Short: "List a node's children",
		Args:  pathArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				children, err := zkCall(ctx, s, func() ([]string, error) {
					ch, _, err := s.conn.Children(p)
					return ch, err
				})
				if err != nil {
					return zkErr(p, err)
				}
				slices.Sort(children)
				if c.g.output == "json" {
					if children == nil {
						children = []string{}
					}
					return printJSON(c.out, struct {
						Path     string   `json:"path"`
						Children []string `json:"children"`
					}{p, children})
				}
				var b strings.Builder
				for _, ch := range children {
					b.WriteString(ch)
					b.WriteByte('\n')
				}
				_, err = io.WriteString(c.out, b.String())
				return err
			})
		},
	}
}

// zkNode is a node of `tree`'s output.
type zkNode struct {
	Path     string    `json:"path"`
	Children []*zkNode `json:"children,omitempty"`
}

func (c *ctl) zkTreeCommand() *cobra.Command {
	var depth int
	cmd := &cobra.Command{
		Use:   "tree [--depth N] [PATH]",
		Short: "Show the namespace under PATH (default /) as an indented tree",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("%s takes at most one path", cmd.CommandPath())
			}
			if len(args) == 1 {
				return checkZKPath(args[0])
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			root := "/"
			if len(args) == 1 {
				root = args[0]
			}
			if depth < 0 {
				return usagef("--depth cannot be negative")
			}
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				n, err := zkWalk(ctx, s, root, depth)
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, n)
				}
				var b bytes.Buffer
				b.WriteString(n.Path)
				b.WriteByte('\n')
				drawTree(&b, n, "")
				_, err = c.out.Write(b.Bytes())
				return err
			})
		},
	}
	cmd.Flags().IntVar(&depth, "depth", 0, "descend at most this many levels (0: all)")
	return cmd
}

// zkWalk reads the subtree at root, with up to zkParallel requests in
// flight. Nodes that vanish while it reads are left out.
func zkWalk(ctx context.Context, s *zkSession, root string, maxDepth int) (*zkNode, error) {
	top := &zkNode{Path: root}
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, zkParallel)
	var visit func(n *zkNode, depth int)
	visit = func(n *zkNode, depth int) {
		defer wg.Done()
		sem <- struct{}{}
		children, err := zkCall(ctx, s, func() ([]string, error) {
			ch, _, err := s.conn.Children(n.Path)
			return ch, err
		})
		<-sem
		if err != nil {
			if errors.Is(err, zk.ErrNoNode) && n != top {
				return
			}
			mu.Lock()
			if firstErr == nil {
				firstErr = zkErr(n.Path, err)
			}
			mu.Unlock()
			return
		}
		slices.Sort(children)
		n.Children = make([]*zkNode, len(children))
		for i, name := range children {
			n.Children[i] = &zkNode{Path: zkChild(n.Path, name)}
		}
		if maxDepth > 0 && depth+1 >= maxDepth {
			return
		}
		for _, ch := range n.Children {
			wg.Add(1)
			go visit(ch, depth+1)
		}
	}
	wg.Add(1)
	visit(top, 0)
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	return top, nil
}

// drawTree writes n's children below it:
//
//	/
//	├── app
//	│   └── config
//	└── zookeeper
func drawTree(b *bytes.Buffer, n *zkNode, indent string) {
	for i, ch := range n.Children {
		last := i == len(n.Children)-1
		b.WriteString(indent)
		if last {
			b.WriteString("└── ")
		} else {
			b.WriteString("├── ")
		}
		b.WriteString(displayable(path.Base(ch.Path)))
		b.WriteByte('\n')
		next := indent + "│   "
		if last {
			next = indent + "    "
		}
		drawTree(b, ch, next)
	}
}

// zkStat is a Stat in JSON, with ZooKeeper's field names.
type zkStat struct {
	Czxid          int64 `json:"czxid"`
	Mzxid          int64 `json:"mzxid"`
	Pzxid          int64 `json:"pzxid"`
	Ctime          int64 `json:"ctime"`
	Mtime          int64 `json:"mtime"`
	Version        int32 `json:"version"`
	Cversion       int32 `json:"cversion"`
	Aversion       int32 `json:"aversion"`
	EphemeralOwner int64 `json:"ephemeralOwner"`
	DataLength     int32 `json:"dataLength"`
	NumChildren    int32 `json:"numChildren"`
}

func toZKStat(st *zk.Stat) *zkStat {
	if st == nil {
		return nil
	}
	return &zkStat{
		Czxid: st.Czxid, Mzxid: st.Mzxid, Pzxid: st.Pzxid, Ctime: st.Ctime, Mtime: st.Mtime,
		Version: st.Version, Cversion: st.Cversion, Aversion: st.Aversion,
		EphemeralOwner: st.EphemeralOwner, DataLength: st.DataLength, NumChildren: st.NumChildren,
	}
}

// writeStat writes st as zkCli's stat does.
func writeStat(b *bytes.Buffer, st *zk.Stat) {
	when := func(ms int64) string { return time.UnixMilli(ms).Format("Mon Jan 02 15:04:05 MST 2006") }
	fmt.Fprintf(b, "cZxid = 0x%x\n", st.Czxid)
	fmt.Fprintf(b, "ctime = %s\n", when(st.Ctime))
	fmt.Fprintf(b, "mZxid = 0x%x\n", st.Mzxid)
	fmt.Fprintf(b, "mtime = %s\n", when(st.Mtime))
	fmt.Fprintf(b, "pZxid = 0x%x\n", st.Pzxid)
	fmt.Fprintf(b, "cversion = %d\n", st.Cversion)
	fmt.Fprintf(b, "dataVersion = %d\n", st.Version)
	fmt.Fprintf(b, "aclVersion = %d\n", st.Aversion)
	fmt.Fprintf(b, "ephemeralOwner = 0x%x\n", st.EphemeralOwner)
	fmt.Fprintf(b, "dataLength = %d\n", st.DataLength)
	fmt.Fprintf(b, "numChildren = %d\n", st.NumChildren)
}

func (c *ctl) printZKStat(p string, st *zk.Stat) error {
	switch c.g.output {
	case "json":
		return printJSON(c.out, struct {
			Path string  `json:"path"`
			Stat *zkStat `json:"stat"`
		}{p, toZKStat(st)})
	case "table":
		t := table{header: []string{"PATH", "CZXID", "MZXID", "PZXID", "VERSION", "CVERSION", "EPHEMERAL OWNER", "DATA LENGTH", "CHILDREN"}}
		t.add(p, fmt.Sprintf("0x%x", st.Czxid), fmt.Sprintf("0x%x", st.Mzxid), fmt.Sprintf("0x%x", st.Pzxid),
			strconv.Itoa(int(st.Version)), strconv.Itoa(int(st.Cversion)), fmt.Sprintf("0x%x", st.EphemeralOwner),
			strconv.Itoa(int(st.DataLength)), strconv.Itoa(int(st.NumChildren)))
		return t.render(c.out)
	}
	var b bytes.Buffer
	writeStat(&b, st)
	_, err := c.out.Write(b.Bytes())
	return err
}

func (c *ctl) zkStatCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "stat PATH",
		Short: "Show a node's Stat (zxids, versions, owner, sizes)",
		Args:  pathArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				st, err := zkCall(ctx, s, func() (*zk.Stat, error) {
					ok, st, err := s.conn.Exists(p)
					if err == nil && !ok {
						err = zk.ErrNoNode
					}
					return st, err
				})
				if err != nil {
					return zkErr(p, err)
				}
				return c.printZKStat(p, st)
			})
		},
	}
}

func (c *ctl) zkCreateCommand() *cobra.Command {
	var ephemeral, sequential bool
	cmd := &cobra.Command{
		Use:   "create [-e] [-s] PATH [DATA]",
		Short: "Create a node (-e ephemeral, held until interrupted; -s sequential)",
		Long: `Create a node with DATA (empty if not given), open to everyone.

With -s, ZooKeeper appends a ten-digit sequence number to the name; the path
created is printed. With -e the node lives as long as this command's session:
ensemblectl keeps running, and the node is deleted when it is interrupted or
loses its session.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s takes a path and optional data", cmd.CommandPath())
			}
			return checkZKPath(args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			var data []byte
			if len(args) == 2 {
				data = []byte(args[1])
			}
			var flags int32
			if ephemeral {
				flags |= zk.FlagEphemeral
			}
			if sequential {
				flags |= zk.FlagSequence
			}
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				created, err := zkCall(ctx, s, func() (string, error) {
					return s.conn.Create(p, data, flags, zk.WorldACL(zk.PermAll))
				})
				if err != nil {
					return zkErr(p, err)
				}
				if c.g.output == "json" {
					err = printJSON(c.out, struct {
						Path      string `json:"path"`
						Ephemeral bool   `json:"ephemeral"`
					}{created, ephemeral})
				} else {
					_, err = fmt.Fprintf(c.out, "Created %s\n", created)
				}
				if err != nil || !ephemeral {
					return err
				}
				select {
				case <-ctx.Done():
					return nil
				case <-s.lost:
					return fmt.Errorf("%s: session expired; the ephemeral node is gone", created)
				}
			})
		},
	}
	cmd.Flags().BoolVarP(&ephemeral, "ephemeral", "e", false, "create an ephemeral node and keep it until interrupted")
	cmd.Flags().BoolVarP(&sequential, "sequential", "s", false, "append a sequence number to the name")
	return cmd
}

func (c *ctl) zkGetCommand() *cobra.Command {
	var withStat bool
	cmd := &cobra.Command{
		Use:   "get [-s] PATH",
		Short: "Print a node's data (-s: and its Stat)",
		Args:  pathArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				type got struct {
					data []byte
					st   *zk.Stat
				}
				g, err := zkCall(ctx, s, func() (got, error) {
					d, st, err := s.conn.Get(p)
					return got{d, st}, err
				})
				if err != nil {
					return zkErr(p, err)
				}
				if c.g.output == "json" {
					return printJSON(c.out, struct {
						Path string  `json:"path"`
						Data []byte  `json:"data"`
						Stat *zkStat `json:"stat"`
					}{p, g.data, toZKStat(g.st)})
				}
				var b bytes.Buffer
				b.Write(g.data)
				b.WriteByte('\n')
				if withStat {
					writeStat(&b, g.st)
				}
				_, err = c.out.Write(b.Bytes())
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&withStat, "stat", "s", false, "also print the node's Stat")
	return cmd
}

func (c *ctl) zkSetCommand() *cobra.Command {
	var version int32
	cmd := &cobra.Command{
		Use:   "set [-v VERSION] PATH [DATA]",
		Short: "Set a node's data (from stdin when DATA is not given)",
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("%s takes a path and data", cmd.CommandPath())
			}
			return checkZKPath(args[0])
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			var data []byte
			if len(args) == 2 {
				data = []byte(args[1])
			} else {
				b, err := io.ReadAll(c.env.Stdin)
				if err != nil {
					return fmt.Errorf("cannot read the data from stdin: %w", err)
				}
				data = b
			}
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				st, err := zkCall(ctx, s, func() (*zk.Stat, error) { return s.conn.Set(p, data, version) })
				if err != nil {
					return zkErr(p, err)
				}
				if c.g.output == "json" {
					return printJSON(c.out, struct {
						Path string  `json:"path"`
						Stat *zkStat `json:"stat"`
					}{p, toZKStat(st)})
				}
				_, err = fmt.Fprintf(c.out, "Set %s (version %d)\n", p, st.Version)
				return err
			})
		},
	}
	cmd.Flags().Int32VarP(&version, "version", "v", -1, "only if the node is at this version (-1: any)")
	return cmd
}

func (c *ctl) zkRmCommand() *cobra.Command {
	var recursive bool
	var version int32
	cmd := &cobra.Command{
		Use:   "rm [-r] [-v VERSION] PATH",
		Short: "Remove a node (-r: and everything below it)",
		Args:  pathArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			p := args[0]
			if recursive && version != -1 {
				return usagef("-v cannot be used with -r")
			}
			if recursive && p == "/" {
				return usagef("refusing to remove the whole namespace")
			}
			return c.withZK(cmd, func(ctx context.Context, s *zkSession) error {
				removed := 1
				var err error
				if recursive {
					removed, err = zkRemoveAll(ctx, s, p)
				} else {
					_, err = zkCall(ctx, s, func() (struct{}, error) { return struct{}{}, s.conn.Delete(p, version) })
					err = zkErr(p, err)
				}
				if err != nil {
					return err
				}
				if c.g.output == "json" {
					return printJSON(c.out, struct {
						Path    string `json:"path"`
						Removed int    `json:"removed"`
					}{p, removed})
				}
				if removed > 1 {
					_, err = fmt.Fprintf(c.out, "Removed %s and %d nodes below it\n", p, removed-1)
				} else {
					_, err = fmt.Fprintf(c.out, "Removed %s\n", p)
				}
				return err
			})
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove the node's children first, all the way down")
	cmd.Flags().Int32VarP(&version, "version", "v", -1, "only if the node is at this version (-1: any)")
	return cmd
}

// zkRemoveAll removes p and its subtree, deepest nodes first (ZooKeeper
// refuses to remove a node that has children), the nodes of one depth in
// parallel. It returns how many nodes it removed.
func zkRemoveAll(ctx context.Context, s *zkSession, p string) (int, error) {
	top, err := zkWalk(ctx, s, p, 0)
	if err != nil {
		return 0, err
	}
	var levels [][]string
	var collect func(n *zkNode, depth int)
	collect = func(n *zkNode, depth int) {
		if len(levels) <= depth {
			levels = append(levels, nil)
		}
		levels[depth] = append(levels[depth], n.Path)
		for _, ch := range n.Children {
			collect(ch, depth+1)
		}
	}
	collect(top, 0)
	removed := 0
	for d := len(levels) - 1; d >= 0; d-- {
		var (
			mu       sync.Mutex
			wg       sync.WaitGroup
			firstErr error
		)
		sem := make(chan struct{}, zkParallel)
		for _, np := range levels[d] {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer wg.Done()
				defer func() { <-sem }()
				_, err := zkCall(ctx, s, func() (struct{}, error) { return struct{}{}, s.conn.Delete(np, -1) })
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					removed++
				case errors.Is(err, zk.ErrNoNode):
					// Removed by someone else meanwhile: the goal is met.
				case firstErr == nil:
					firstErr = zkErr(np, err)
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return removed, firstErr
		}
	}
	return removed, nil
}
