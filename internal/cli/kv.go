package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// getOpts are the flags of `get`, also accepted by get lines of `txn`.
type getOpts struct {
	prefix, fromKey      bool
	keysOnly, countOnly  bool
	rev, limit           int64
	order, sortBy        string
	consistency          string
	printValueOnly       bool
	minModRev, maxModRev int64
	minCreate, maxCreate int64
}

func (o *getOpts) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&o.prefix, "prefix", false, "get the keys with the given prefix")
	fs.BoolVar(&o.fromKey, "from-key", false, "get the keys greater than or equal to the given key (byte order)")
	fs.Int64Var(&o.rev, "rev", 0, "read at this revision (0: the latest)")
	fs.Int64Var(&o.limit, "limit", 0, "return at most this many keys (0: no limit)")
	fs.StringVar(&o.order, "order", "", "order of the results: ASCEND or DESCEND")
	fs.StringVar(&o.sortBy, "sort-by", "", "sort by CREATE, KEY, MODIFY, VALUE or VERSION")
	fs.BoolVar(&o.keysOnly, "keys-only", false, "return the keys without their values")
	fs.BoolVar(&o.countOnly, "count-only", false, "return only the number of keys")
	fs.StringVar(&o.consistency, "consistency", "l", "linearizable (l) or serializable (s)")
	fs.Int64Var(&o.minModRev, "min-mod-rev", 0, "only keys modified at or after this revision")
	fs.Int64Var(&o.maxModRev, "max-mod-rev", 0, "only keys modified at or before this revision")
	fs.Int64Var(&o.minCreate, "min-create-rev", 0, "only keys created at or after this revision")
	fs.Int64Var(&o.maxCreate, "max-create-rev", 0, "only keys created at or before this revision")
}

// op builds the range request of args (KEY [RANGE_END]).
func (o *getOpts) op(args []string) (string, []clientv3.OpOption, error) {
	if len(args) < 1 || len(args) > 2 {
		return "", nil, usagef("get takes a key and an optional range end")
	}
	if o.prefix && o.fromKey {
		return "", nil, usagef("--prefix and --from-key cannot be used together")
	}
	if o.keysOnly && o.countOnly {
		return "", nil, usagef("--keys-only and --count-only cannot be used together")
	}
	if len(args) == 2 && (o.prefix || o.fromKey) {
		return "", nil, usagef("a range end cannot be given with --prefix or --from-key")
	}
	if o.limit < 0 || o.rev < 0 {
		return "", nil, usagef("--limit and --rev cannot be negative")
	}
	key := args[0]
	var opts []clientv3.OpOption
	switch o.consistency {
	case "l", "":
	case "s":
		opts = append(opts, clientv3.WithSerializable())
	default:
		return "", nil, usagef("--consistency: %q is neither l nor s", o.consistency)
	}
	if len(args) == 2 {
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	order := clientv3.SortNone
	switch strings.ToUpper(o.order) {
	case "":
	case "ASCEND":
		order = clientv3.SortAscend
	case "DESCEND":
		order = clientv3.SortDescend
	default:
		return "", nil, usagef("--order: %q is neither ASCEND nor DESCEND", o.order)
	}
	target := clientv3.SortByKey
	switch strings.ToUpper(o.sortBy) {
	case "", "KEY":
	case "CREATE":
		target = clientv3.SortByCreateRevision
	case "MODIFY":
		target = clientv3.SortByModRevision
	case "VALUE":
		target = clientv3.SortByValue
	case "VERSION":
		target = clientv3.SortByVersion
	default:
		return "", nil, usagef("--sort-by: %q is not one of CREATE, KEY, MODIFY, VALUE or VERSION", o.sortBy)
	}
	if o.sortBy != "" && order == clientv3.SortNone {
		order = clientv3.SortAscend
	}
	opts = append(opts, clientv3.WithSort(target, order), clientv3.WithLimit(o.limit))
	if o.rev > 0 {
		opts = append(opts, clientv3.WithRev(o.rev))
	}
	switch {
	case (o.prefix || o.fromKey) && key == "":
		// The whole key space: etcd's "from the smallest key".
		key = "\x00"
		opts = append(opts, clientv3.WithFromKey())
	case o.prefix:
		opts = append(opts, clientv3.WithPrefix())
	case o.fromKey:
		opts = append(opts, clientv3.WithFromKey())
	}
	if o.keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	if o.countOnly {
		opts = append(opts, clientv3.WithCountOnly())
	}
	if o.minModRev > 0 {
		opts = append(opts, clientv3.WithMinModRev(o.minModRev))
	}
	if o.maxModRev > 0 {
		opts = append(opts, clientv3.WithMaxModRev(o.maxModRev))
	}
	if o.minCreate > 0 {
		opts = append(opts, clientv3.WithMinCreateRev(o.minCreate))
	}
	if o.maxCreate > 0 {
		opts = append(opts, clientv3.WithMaxCreateRev(o.maxCreate))
	}
	return key, opts, nil
}

func (c *ctl) getCommand() *cobra.Command {
	var o getOpts
	cmd := &cobra.Command{
		Use:   "get [flags] KEY [RANGE_END]",
		Short: "Get a key or a range of keys",
		Args:  rangeArgs(1, 2, "a key and an optional range end"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, opts, err := o.op(args)
			if err != nil {
				return err
			}
			if o.printValueOnly && c.g.output != "simple" {
				return usagef("--print-value-only works only with --write-out=simple")
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Get(ctx, key, opts...)
				if err != nil {
					return err
				}
				return c.printGet(resp, o.countOnly, o.printValueOnly)
			})
		},
	}
	o.bind(cmd.Flags())
	cmd.Flags().BoolVar(&o.printValueOnly, "print-value-only", false, "print only the values (simple output)")
	return cmd
}

func (c *ctl) printGet(resp *clientv3.GetResponse, countOnly, valueOnly bool) error {
	switch {
	case c.g.output == "json":
		return printJSON(c.out, (*pb.RangeResponse)(resp))
	case countOnly:
		_, err := fmt.Fprintln(c.out, resp.Count)
		return err
	case c.g.output == "table":
		t := table{header: []string{"KEY", "VALUE", "CREATE REV", "MOD REV", "VERSION", "LEASE"}}
		for _, kv := range resp.Kvs {
			lease := ""
			if kv.Lease != 0 {
				lease = fmt.Sprintf("%016x", kv.Lease)
			}
			t.add(string(kv.Key), string(kv.Value), strconv.FormatInt(kv.CreateRevision, 10),
				strconv.FormatInt(kv.ModRevision, 10), strconv.FormatInt(kv.Version, 10), lease)
		}
		return t.render(c.out)
	}
	var buf bytes.Buffer
	for _, kv := range resp.Kvs {
		printKV(&buf, kv, valueOnly)
	}
	_, err := c.out.Write(buf.Bytes())
	return err
}

// putOpts are the flags of `put`, also accepted by put lines of `txn`.
type putOpts struct {
	lease       string
	prevKV      bool
	ignoreValue bool
	ignoreLease bool
}

func (o *putOpts) bind(fs *pflag.FlagSet) {
	fs.StringVar(&o.lease, "lease", "0", "lease ID (hexadecimal) to attach to the key")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "return the previous key-value pair")
	fs.BoolVar(&o.ignoreValue, "ignore-value", false, "keep the key's current value")
	fs.BoolVar(&o.ignoreLease, "ignore-lease", false, "keep the key's current lease")
}

// op builds the put of args (KEY [VALUE]); stdin, if not nil, supplies a
// value that args lack.
func (o *putOpts) op(args []string, stdin io.Reader) (string, string, []clientv3.OpOption, error) {
	if len(args) < 1 || len(args) > 2 {
		return "", "", nil, usagef("put takes a key and a value")
	}
	key, value := args[0], ""
	switch {
	case len(args) == 2 && o.ignoreValue:
		return "", "", nil, usagef("a value cannot be given with --ignore-value")
	case len(args) == 2:
		value = args[1]
	case !o.ignoreValue && stdin == nil:
		return "", "", nil, usagef("put needs a value (or --ignore-value)")
	case !o.ignoreValue:
		b, err := io.ReadAll(stdin)
		if err != nil {
			return "", "", nil, fmt.Errorf("cannot read the value from stdin: %w", err)
		}
		value = string(b)
	}
	id, err := parseLeaseID(o.lease)
	if err != nil {
		return "", "", nil, err
	}
	var opts []clientv3.OpOption
	if id != 0 {
		if o.ignoreLease {
			return "", "", nil, usagef("--lease cannot be given with --ignore-lease")
		}
		opts = append(opts, clientv3.WithLease(id))
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.ignoreValue {
		opts = append(opts, clientv3.WithIgnoreValue())
	}
	if o.ignoreLease {
		opts = append(opts, clientv3.WithIgnoreLease())
	}
	return key, value, opts, nil
}

func parseLeaseID(s string) (clientv3.LeaseID, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(s, "0x"), 16, 64)
	if err != nil {
		return 0, usagef("bad lease ID %q: want a hexadecimal number", s)
	}
	return clientv3.LeaseID(id), nil
}

func (c *ctl) putCommand() *cobra.Command {
	var o putOpts
	cmd := &cobra.Command{
		Use:   "put [flags] KEY [VALUE]",
		Short: "Put a key (the value comes from stdin when not given)",
		Long: `Put a key. Without VALUE (and without --ignore-value), the value is read from
stdin. A value that starts with '-' goes after '--': put KEY -- -VALUE.`,
		Args: rangeArgs(1, 2, "a key and a value"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, value, opts, err := o.op(args, c.env.Stdin)
			if err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Put(ctx, key, value, opts...)
				if err != nil {
					return err
				}
				return c.printPut(resp)
			})
		},
	}
	o.bind(cmd.Flags())
	return cmd
}

func (c *ctl) printPut(resp *clientv3.PutResponse) error {
	if c.g.output == "json" {
		return printJSON(c.out, (*pb.PutResponse)(resp))
	}
	var buf bytes.Buffer
	buf.WriteString("OK\n")
	if resp.PrevKv != nil {
		printKV(&buf, resp.PrevKv, false)
	}
	_, err := c.out.Write(buf.Bytes())
	return err
}

// delOpts are the flags of `del`, also accepted by del lines of `txn`.
type delOpts struct {
	prefix, fromKey, prevKV bool
}

func (o *delOpts) bind(fs *pflag.FlagSet) {
	fs.BoolVar(&o.prefix, "prefix", false, "delete the keys with the given prefix")
	fs.BoolVar(&o.fromKey, "from-key", false, "delete the keys greater than or equal to the given key")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "return the deleted key-value pairs")
}

func (o *delOpts) op(args []string) (string, []clientv3.OpOption, error) {
	if len(args) < 1 || len(args) > 2 {
		return "", nil, usagef("del takes a key and an optional range end")
	}
	if o.prefix && o.fromKey {
		return "", nil, usagef("--prefix and --from-key cannot be used together")
	}
	if len(args) == 2 && (o.prefix || o.fromKey) {
		return "", nil, usagef("a range end cannot be given with --prefix or --from-key")
	}
	key := args[0]
	var opts []clientv3.OpOption
	if len(args) == 2 {
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	switch {
	case (o.prefix || o.fromKey) && key == "":
		key = "\x00"
		opts = append(opts, clientv3.WithFromKey())
	case o.prefix:
		opts = append(opts, clientv3.WithPrefix())
	case o.fromKey:
		opts = append(opts, clientv3.WithFromKey())
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	return key, opts, nil
}

func (c *ctl) delCommand() *cobra.Command {
	var o delOpts
	cmd := &cobra.Command{
		Use:   "del [flags] KEY [RANGE_END]",
		Short: "Delete a key or a range of keys",
		Args:  rangeArgs(1, 2, "a key and an optional range end"),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, opts, err := o.op(args)
			if err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Delete(ctx, key, opts...)
				if err != nil {
					return err
				}
				return c.printDel(resp)
			})
		},
	}
	o.bind(cmd.Flags())
	return cmd
}

func (c *ctl) printDel(resp *clientv3.DeleteResponse) error {
	if c.g.output == "json" {
		return printJSON(c.out, (*pb.DeleteRangeResponse)(resp))
	}
	var buf bytes.Buffer
	fmt.Fprintln(&buf, resp.Deleted)
	for _, kv := range resp.PrevKvs {
		printKV(&buf, kv, false)
	}
	_, err := c.out.Write(buf.Bytes())
	return err
}
