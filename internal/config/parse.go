package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"go.yaml.in/yaml/v3"
)

const configFileKey = "config-file"

// Parse is ParseWithEnv with the process environment.
func Parse(args []string, out io.Writer) (*Config, error) {
	return ParseWithEnv(args, os.Environ(), out)
}

// ParseWithEnv builds a validated Config from command-line arguments (without
// the program name), environment entries of the form KEY=VALUE and the config
// file they name. Flags override the file, which overrides the environment,
// which overrides the defaults; see the package documentation.
//
// With --help or --version it writes the text to out and returns ErrHelp or
// ErrVersion without looking at the environment or the file. Every other error
// is one line naming the flag, file key or variable and the value at fault.
func ParseWithEnv(args, env []string, out io.Writer) (*Config, error) {
	if out == nil {
		out = io.Discard
	}
	table := specs()

	flags := make(map[string]string)
	fset := flag.NewFlagSet("ensemble", flag.ContinueOnError)
	// The flag package would print its own error and usage; we return one
	// line instead and print help only when asked.
	fset.SetOutput(io.Discard)
	fset.Usage = func() {}
	for _, s := range table {
		fset.Var(recorder{flags, s.name}, s.name, s.help)
	}
	fset.Var(recorder{flags, configFileKey}, configFileKey, "")
	help := fset.Bool("help", false, "")
	fset.BoolVar(help, "h", false, "")
	version := fset.Bool("version", false, "")
	if err := fset.Parse(args); err != nil {
		return nil, usageError(err)
	}
	if *help {
		writeHelp(out, table)
		return nil, ErrHelp
	}
	if *version {
		fmt.Fprintf(out, "ensemble version %s\nGo version: %s\nGo OS/Arch: %s/%s\n",
			Version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		return nil, ErrVersion
	}
	if fset.NArg() > 0 {
		return nil, &fieldError{kind: ErrUsage, msg: fmt.Sprintf("unexpected argument %q", fset.Arg(0))}
	}

	envs := envValues(env, table)
	path, ok := flags[configFileKey]
	if !ok {
		path = envs[configFileKey]
	}
	var file map[string]string
	if path != "" {
		var err error
		if file, err = readFile(path, table); err != nil {
			return nil, err
		}
	}

	from := make(map[string]origin, len(table))
	c := &Config{}
	for _, s := range table {
		v, o := s.def, fromDefault
		if fv, ok := flags[s.name]; ok {
			v, o = fv, fromFlag
		} else if fv, ok := file[s.name]; ok {
			v, o = fv, fromFile
		} else if ev, ok := envs[s.name]; ok {
			v, o = ev, fromEnv
		}
		from[s.name] = o
		if err := s.set(c, v); err != nil {
			e := invalid(s.name, v, err.Error())
			var bv *badValue
			if errors.As(err, &bv) {
				e.value, e.reason = bv.value, bv.reason
			}
			e.from, e.file = o, path
			return nil, e
		}
	}
	c.derive()
	if err := c.Validate(); err != nil {
		// Validate speaks of flags; point at where the value really came from.
		var e *fieldError
		if errors.As(err, &e) {
			e.from, e.file = from[e.key], path
		}
		return nil, err
	}
	return c, nil
}

// recorder is a flag.Value that only records the text; conversion happens
// later, in one place for flags, file and environment alike.
type recorder struct {
	values map[string]string
	name   string
}

func (r recorder) String() string     { return "" }
func (r recorder) Set(v string) error { r.values[r.name] = v; return nil }

// usageError rewrites the flag package's messages, which spell flags with
// one dash, into one line in the style of the rest of this package.
func usageError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		msg = "unknown flag --" + name
	} else if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		msg = "flag --" + name + " needs a value"
	} else if rest, ok := strings.CutPrefix(msg, "invalid boolean value "); ok {
		if value, tail, ok := strings.Cut(rest, " for -"); ok {
			name, _, _ := strings.Cut(tail, ":")
			msg = "invalid value " + value + " for flag --" + name + ": must be true or false"
		}
	}
	return &fieldError{kind: ErrUsage, msg: msg, cause: err}
}

// envValues picks the ENSEMBLE_* variables that name a setting. Empty values
// count as unset, as with etcd's ETCD_* variables; for duplicates the first
// wins, as with os.Getenv. Unknown ENSEMBLE_* variables are ignored because
// the environment is shared with other programs.
func envValues(env []string, table []spec) map[string]string {
	byEnv := make(map[string]string, len(table)+1)
	for _, s := range table {
		byEnv[envName(s.name)] = s.name
	}
	byEnv[envName(configFileKey)] = configFileKey
	vals := make(map[string]string)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || v == "" || !strings.HasPrefix(k, "ENSEMBLE_") {
			continue
		}
		name, known := byEnv[k]
		if !known {
			continue
		}
		if _, dup := vals[name]; !dup {
			vals[name] = v
		}
	}
	return vals
}

// readFile reads the YAML config file: a mapping from flag names to scalar
// values (a list is also accepted for URL lists and the initial cluster).
func readFile(path string, table []spec) (map[string]string, error) {
	fileErr := func(msg string, cause error) error {
		return &fieldError{kind: ErrConfigFile, file: path, msg: msg, cause: cause}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := err.Error()
		var pe *fs.PathError
		if errors.As(err, &pe) {
			msg = pe.Err.Error() // the path is already in the message
		}
		return nil, fileErr(msg, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fileErr(err.Error(), err)
	}
	vals := make(map[string]string)
	if doc.Kind == 0 || len(doc.Content) == 0 {
		return vals, nil // empty file or only comments
	}
	root := deref(doc.Content[0])
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return vals, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, fileErr("must be a mapping of flag names to values", nil)
	}
	known := make(map[string]spec, len(table))
	for _, s := range table {
		known[s.name] = s
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := deref(root.Content[i]), deref(root.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			return nil, fileErr(fmt.Sprintf("line %d: keys must be flag names", k.Line), nil)
		}
		s, ok := known[k.Value]
		if !ok {
			return nil, fileErr(fmt.Sprintf("unknown key %q", k.Value), nil)
		}
		if _, dup := vals[s.name]; dup {
			return nil, fileErr(fmt.Sprintf("duplicate key %q", k.Value), nil)
		}
		val, ok := scalarValue(v, s.list)
		if !ok {
			want := "a single value"
			if s.list {
				want = "a comma-separated string or a list of strings"
			}
			return nil, fileErr(fmt.Sprintf("key %q must be %s", k.Value, want), nil)
		}
		vals[s.name] = val
	}
	return vals, nil
}

// scalarValue returns the text of n; null is the empty string. A sequence of
// scalars is joined with commas when list is set.
func scalarValue(n *yaml.Node, list bool) (string, bool) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "", true
		}
		return n.Value, true
	case yaml.SequenceNode:
		if !list {
			return "", false
		}
		parts := make([]string, 0, len(n.Content))
		for _, e := range n.Content {
			e = deref(e)
			if e.Kind != yaml.ScalarNode {
				return "", false
			}
			parts = append(parts, e.Value)
		}
		return strings.Join(parts, ","), true
	}
	return "", false
}

func deref(n *yaml.Node) *yaml.Node {
	// An alias to an alias is impossible in YAML, so one step suffices.
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		return n.Alias
	}
	return n
}

// writeHelp prints the usage line and every flag with its default, grouped.
func writeHelp(w io.Writer, table []spec) {
	type line struct{ left, right string }
	groups := []string{groupMember, groupClustering, groupLimits, groupZooKeeper, groupLogging, groupOther}
	byGroup := make(map[string][]line)
	width := 0
	add := func(group, left, right string) {
		byGroup[group] = append(byGroup[group], line{left, right})
		width = max(width, len(left))
	}
	for _, s := range table {
		show := s.show
		if show == "" {
			show = s.def
		}
		add(s.group, "--"+s.name+" "+s.hint, s.help+" (default "+show+")")
	}
	add(groupOther, "--"+configFileKey+" path", "YAML file with flag names as keys (flags given here override it)")
	add(groupOther, "--version", "print the version and exit")
	add(groupOther, "-h, --help", "print this help and exit")

	var b strings.Builder
	b.WriteString("Usage: ensemble [flags]\n")
	b.WriteString("       ensemble snapshot restore FILE [flags]\n\n")
	b.WriteString("Runs one member of an Ensemble cluster: the etcd v3 API on a Raft-replicated\n")
	b.WriteString("store. With no flags it is a single-member cluster on 127.0.0.1 with its data\n")
	b.WriteString("in ./default.ensemble. 'snapshot restore' turns a snapshot saved from a running\n")
	b.WriteString("cluster (etcdctl snapshot save) into a new member's data directory.\n\n")
	b.WriteString("Flags take --flag=value or --flag value. Each can also be set as a key of\n")
	b.WriteString("the --config-file or as an ENSEMBLE_<FLAG_NAME> environment variable (for\n")
	b.WriteString("example ENSEMBLE_DATA_DIR). Flags override the file, which overrides the\n")
	b.WriteString("environment, which overrides the defaults.\n")
	for _, g := range groups {
		fmt.Fprintf(&b, "\n%s:\n", g)
		for _, l := range byGroup[g] {
			fmt.Fprintf(&b, "  %-*s  %s\n", width, l.left, l.right)
		}
	}
	io.WriteString(w, b.String())
}
