// Package cli implements ensemblectl: its commands, their flags and the
// printers of their results, over the public etcd and ZooKeeper clients.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Exit codes of ensemblectl. A command run by `lock` passes its own code
// through instead.
const (
	ExitOK    = 0
	ExitError = 1 // the request failed
	ExitUsage = 2 // the command line was wrong; nothing was sent
)

// Environment variables that stand in for flags the user did not set.
const (
	EnvEndpoints = "ENSEMBLE_ENDPOINTS"
	EnvZKServers = "ENSEMBLE_ZK_SERVERS"
)

// Defaults of the global flags.
const (
	DefaultEndpoint       = "127.0.0.1:2379"
	DefaultZKServer       = "127.0.0.1:2181"
	DefaultDialTimeout    = 2 * time.Second
	DefaultCommandTimeout = 5 * time.Second
)

// Env is everything a run of ensemblectl reads and writes besides the
// network, so that tests can run it in-process.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv looks up environment variables; nil means none are set.
	Getenv func(string) string
}

// Main runs ensemblectl with args (without the program name) on the
// process's stdin and environment, and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	return Run(ctx, args, Env{Stdin: os.Stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv})
}

// Run runs ensemblectl with args in env and returns the exit code. Errors
// are reported as one line on env.Stderr.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if env.Stdin == nil {
		env.Stdin = strings.NewReader("")
	}
	c := &ctl{env: env, out: &syncWriter{w: env.Stdout}}
	root := c.rootCommand()
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return ExitOK
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		return ec.code
	}
	fmt.Fprintf(env.Stderr, "Error: %s\n", errorLine(err, c.g.commandTimeout))
	if isUsage(err) {
		return ExitUsage
	}
	return ExitError
}

// globals are the flags every command shares.
type globals struct {
	endpoints        []string
	dialTimeout      time.Duration
	commandTimeout   time.Duration
	output           string
	zkServers        []string
	zkSessionTimeout time.Duration
}

// ctl is one run of ensemblectl: its flags, its streams and its output.
type ctl struct {
	env Env
	// out serialises writes: watches and observers print from several
	// goroutines.
	out *syncWriter
	g   globals
}

// syncWriter makes whole writes to w atomic with respect to each other.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

// usageError marks an error in the command line.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func isUsage(err error) bool {
	var u usageError
	if errors.As(err, &u) {
		return true
	}
	// Cobra reports unknown commands and bad arguments to commands without
	// a validator as plain errors; they are usage errors all the same.
	msg := err.Error()
	return strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand flag")
}

// exitCodeError ends the run with code and no message: the command that
// failed (run by `lock`) has spoken for itself.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// rpcNoise is how gRPC dresses a status as an error; the description alone
// says what went wrong.
var rpcNoise = regexp.MustCompile(`rpc error: code = \w+ desc = `)

// errorLine turns err into the one line the user sees.
func errorLine(err error, commandTimeout time.Duration) string {
	msg := rpcNoise.ReplaceAllString(err.Error(), "")
	if (errors.Is(err, context.DeadlineExceeded) || status.Code(err) == codes.DeadlineExceeded) && !strings.Contains(msg, "within") {
		msg += fmt.Sprintf(" (no answer within --command-timeout=%s)", commandTimeout)
	}
	return strings.Join(strings.Fields(msg), " ")
}

func (c *ctl) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "ensemblectl",
		Short: "A command-line client for Ensemble (and any etcd v3 or ZooKeeper server)",
		Long: `ensemblectl talks to Ensemble through its etcd v3 API (key-value, watch, lease,
cluster, maintenance, lock and election verbs) and through its ZooKeeper port
(the "zk" verbs).`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		DisableAutoGenTag: true,
		// A typo should fail with one line, not a page of suggestions.
		DisableSuggestions: true,
		CompletionOptions:  cobra.CompletionOptions{DisableDefaultCmd: true},
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return c.checkGlobals()
		},
	}
	root.SetIn(c.env.Stdin)
	root.SetOut(c.env.Stdout)
	root.SetErr(c.env.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	pf := root.PersistentFlags()
	pf.StringSliceVar(&c.g.endpoints, "endpoints", c.envList(EnvEndpoints, DefaultEndpoint),
		"etcd API endpoints, comma-separated (env "+EnvEndpoints+")")
	pf.DurationVar(&c.g.dialTimeout, "dial-timeout", DefaultDialTimeout, "how long to wait for a connection")
	pf.DurationVar(&c.g.commandTimeout, "command-timeout", DefaultCommandTimeout, "how long to wait for an answer to each request")
	pf.StringVarP(&c.g.output, "write-out", "w", "simple", "output format: simple, json or table")
	pf.StringSliceVar(&c.g.zkServers, "zk-servers", c.envList(EnvZKServers, DefaultZKServer),
		"ZooKeeper servers for the zk verbs, comma-separated (env "+EnvZKServers+")")
	pf.DurationVar(&c.g.zkSessionTimeout, "zk-session-timeout", 10*time.Second, "ZooKeeper session timeout of the zk verbs")

	root.AddCommand(
		c.getCommand(), c.putCommand(), c.delCommand(), c.txnCommand(), c.watchCommand(),
		c.leaseCommand(), c.memberCommand(), c.endpointCommand(),
		c.snapshotCommand(), c.compactionCommand(), c.defragCommand(), c.alarmCommand(),
		c.lockCommand(), c.electCommand(), c.zkCommand(), c.versionCommand(),
	)
	return root
}

// envList is the default of a list flag: the environment variable if set.
func (c *ctl) envList(name, def string) []string {
	v := strings.TrimSpace(c.env.Getenv(name))
	if v == "" {
		return []string{def}
	}
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func (c *ctl) checkGlobals() error {
	switch c.g.output {
	case "simple", "json", "table":
	default:
		return usagef("--write-out: %q is not one of simple, json or table", c.g.output)
	}
	if len(c.g.endpoints) == 0 {
		return usagef("--endpoints: no endpoint given")
	}
	if c.g.dialTimeout <= 0 {
		return usagef("--dial-timeout: must be positive, not %s", c.g.dialTimeout)
	}
	if c.g.commandTimeout <= 0 {
		return usagef("--command-timeout: must be positive, not %s", c.g.commandTimeout)
	}
	return nil
}

// client connects to the --endpoints; it fails if none answers within
// --dial-timeout. The caller closes it.
func (c *ctl) client(ctx context.Context) (*clientv3.Client, error) {
	return c.clientFor(ctx, c.g.endpoints)
}

// clientFor connects to endpoints as client does. The client does not end with ctx: a command stopped by a signal still
// releases what it holds (locks, leadership, sessions) through it.
func (c *ctl) clientFor(ctx context.Context, endpoints []string) (*clientv3.Client, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: c.g.dialTimeout,
		// Without blocking, an unreachable endpoint shows only as a command
		// timing out later, with a less helpful message.
		DialOptions: []grpc.DialOption{grpc.WithBlock()}, //nolint:staticcheck // the dial timeout needs it
		Logger:      zap.NewNop(),
	})
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("cannot connect to %s within --dial-timeout=%s", strings.Join(endpoints, ","), c.g.dialTimeout)
		}
		return nil, fmt.Errorf("cannot connect to %s: %w", strings.Join(endpoints, ","), err)
	}
	return cli, nil
}

// withClient runs f with a client and a context bounded by
// --command-timeout.
func (c *ctl) withClient(cmd *cobra.Command, f func(ctx context.Context, cli *clientv3.Client) error) error {
	cli, err := c.client(cmd.Context())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), c.g.commandTimeout)
	defer cancel()
	return f(ctx, cli)
}

// exactArgs and rangeArgs are cobra validators whose errors are usage
// errors with a message that says what the verb wants.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

func rangeArgs(lo, hi int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) < lo || len(args) > hi {
			return usagef("%s takes %s", cmd.CommandPath(), what)
		}
		return nil
	}
}

// group makes cmd a command that only holds subcommands: alone it prints
// its help, and an unknown subcommand is a usage error (cobra would print
// the help and succeed).
func group(cmd *cobra.Command, subs ...*cobra.Command) *cobra.Command {
	cmd.AddCommand(subs...)
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) > 0 {
			return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
		}
		return cmd.Help()
	}
	return cmd
}

// quietFlagSet is a flag set for parsing words that are not the process's
// command line (txn lines, interactive watch lines).
func quietFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}
