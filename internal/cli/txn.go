package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A transaction is read in etcdctl's syntax: comparisons, a blank line, the
// requests to run if they all hold, a blank line, the requests to run
// otherwise, and a final blank line (or the end of the input):
//
//	mod("key1") > "0"
//	val("key2") = "x"
//
//	put key1 "overwrote-key1"
//
//	put key1 "created-key1"
//	get key2 --prefix
//
// A comparison is TARGET("KEY") OP "VALUE", with TARGET one of ver/version,
// c/create, m/mod, val/value or lease (whose value is hexadecimal), and OP
// one of =, !=, < or >. A request is a put, get or del line with the flags of
// those verbs; words are split as a shell would, with "double quotes" (Go
// escapes) and 'single quotes'.

// Prompts printed before each part of an interactive transaction.
const (
	promptCompares = "compares:"
	promptSuccess  = "success requests (get, put, del):"
	promptFailure  = "failure requests (get, put, del):"
)

// parsedTxn is a transaction read from text.
type parsedTxn struct {
	cmps      []clientv3.Cmp
	onSuccess []clientv3.Op
	onFailure []clientv3.Op
}

// readTxn reads a transaction from r; prompt, if not nil, is called before
// each of its three parts.
func readTxn(r io.Reader, prompt func(string)) (parsedTxn, error) {
	var t parsedTxn
	br := bufio.NewReader(r)
	line := 0
	// section reads lines up to a blank line or the end of the input and
	// reports whether the input ended.
	section := func(p string, each func(string) error) (bool, error) {
		if prompt != nil {
			prompt(p)
		}
		for {
			s, err := br.ReadString('\n')
			if err != nil && !errors.Is(err, io.EOF) {
				return true, fmt.Errorf("cannot read the transaction: %w", err)
			}
			eof := err != nil
			if s != "" {
				line++
			}
			s = strings.TrimSpace(s)
			if s == "" {
				return eof, nil
			}
			if perr := each(s); perr != nil {
				return true, usagef("txn line %d: %v", line, perr)
			}
			if eof {
				return true, nil
			}
		}
	}
	eof, err := section(promptCompares, func(s string) error {
		cmp, err := parseCompare(s)
		if err == nil {
			t.cmps = append(t.cmps, cmp)
		}
		return err
	})
	if err != nil || eof {
		return t, err
	}
	eof, err = section(promptSuccess, func(s string) error {
		op, err := parseRequest(s)
		if err == nil {
			t.onSuccess = append(t.onSuccess, op)
		}
		return err
	})
	if err != nil || eof {
		return t, err
	}
	_, err = section(promptFailure, func(s string) error {
		op, err := parseRequest(s)
		if err == nil {
			t.onFailure = append(t.onFailure, op)
		}
		return err
	})
	return t, err
}

// parseCompare parses one comparison line.
func parseCompare(s string) (clientv3.Cmp, error) {
	open := strings.IndexByte(s, '(')
	if open < 0 {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: want TARGET(\"KEY\") OP \"VALUE\"", s)
	}
	target := strings.TrimSpace(s[:open])
	rest := strings.TrimLeftFunc(s[open+1:], unicode.IsSpace)
	key, rest, err := quotedOrUntil(rest, ')')
	if err != nil {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: key: %v", s, err)
	}
	rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
	if !strings.HasPrefix(rest, ")") {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: no ')' after the key", s)
	}
	rest = strings.TrimSpace(rest[1:])
	var op string
	switch {
	case strings.HasPrefix(rest, "!="):
		op = "!="
	case rest != "" && strings.ContainsRune("=<>", rune(rest[0])):
		op = rest[:1]
	default:
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: want one of =, !=, < or > after the key", s)
	}
	rest = strings.TrimSpace(rest[len(op):])
	val, rest, err := quotedOrUntil(rest, 0)
	if err != nil {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: value: %v", s, err)
	}
	if strings.TrimSpace(rest) != "" {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: unexpected %q after the value", s, strings.TrimSpace(rest))
	}
	number := func(base int) (int64, error) {
		n, err := strconv.ParseInt(val, base, 64)
		if err != nil {
			return 0, fmt.Errorf("malformed comparison %q: %q is not a number", s, val)
		}
		return n, nil
	}
	var cmp clientv3.Cmp
	switch target {
	case "ver", "version":
		cmp = clientv3.Version(key)
	case "c", "create":
		cmp = clientv3.CreateRevision(key)
	case "m", "mod":
		cmp = clientv3.ModRevision(key)
	case "val", "value":
		return clientv3.Compare(clientv3.Value(key), op, val), nil
	case "lease":
		n, err := number(16)
		if err != nil {
			return clientv3.Cmp{}, err
		}
		return clientv3.Compare(clientv3.LeaseValue(key), op, n), nil
	default:
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison %q: unknown target %q (want ver, create, mod, val or lease)", s, target)
	}
	n, err := number(10)
	if err != nil {
		return clientv3.Cmp{}, err
	}
	return clientv3.Compare(cmp, op, n), nil
}

// quotedOrUntil reads a Go-quoted string at the start of s, or else the
// text up to stop (the whole of s if stop is 0), and returns it with the
// rest of s.
func quotedOrUntil(s string, stop byte) (string, string, error) {
	if s != "" && (s[0] == '"' || s[0] == '`') {
		q, err := strconv.QuotedPrefix(s)
		if err != nil {
			return "", "", fmt.Errorf("bad quoted string in %q", s)
		}
		v, _ := strconv.Unquote(q)
		return v, s[len(q):], nil
	}
	if stop == 0 {
		return strings.TrimSpace(s), "", nil
	}
	i := strings.IndexByte(s, stop)
	if i < 0 {
		return "", "", fmt.Errorf("no %q in %q", stop, s)
	}
	return strings.TrimSpace(s[:i]), s[i:], nil
}

// splitWords splits a line into words as a shell would: blanks separate
// words; "double quotes" (with Go escapes) and 'single quotes' keep blanks in
// a word.
func splitWords(s string) ([]string, error) {
	var words []string
	var w strings.Builder
	inWord := false
	for i := 0; i < len(s); {
		ch := s[i]
		switch {
		case ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
			i++
		case ch == '"':
			q, err := strconv.QuotedPrefix(s[i:])
			if err != nil {
				return nil, fmt.Errorf("unterminated or malformed double quote in %q", s)
			}
			v, _ := strconv.Unquote(q)
			w.WriteString(v)
			inWord = true
			i += len(q)
		case ch == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated single quote in %q", s)
			}
			w.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 2
		default:
			w.WriteByte(ch)
			inWord = true
			i++
		}
	}
	if inWord {
		words = append(words, w.String())
	}
	return words, nil
}

// parseRequest parses one request line: put, get or del with their flags.
func parseRequest(s string) (clientv3.Op, error) {
	words, err := splitWords(s)
	if err != nil {
		return clientv3.Op{}, err
	}
	if len(words) < 2 {
		return clientv3.Op{}, fmt.Errorf("malformed request %q: want put, get or del and a key", s)
	}
	fs := quietFlagSet(words[0])
	bad := func(err error) (clientv3.Op, error) {
		return clientv3.Op{}, fmt.Errorf("malformed request %q: %v", s, err)
	}
	switch words[0] {
	case "get":
		var o getOpts
		o.bind(fs)
		if err := fs.Parse(words[1:]); err != nil {
			return bad(err)
		}
		key, opts, err := o.op(fs.Args())
		if err != nil {
			return bad(err)
		}
		return clientv3.OpGet(key, opts...), nil
	case "put":
		var o putOpts
		o.bind(fs)
		if err := fs.Parse(words[1:]); err != nil {
			return bad(err)
		}
		key, value, opts, err := o.op(fs.Args(), nil)
		if err != nil {
			return bad(err)
		}
		return clientv3.OpPut(key, value, opts...), nil
	case "del", "delete":
		var o delOpts
		o.bind(fs)
		if err := fs.Parse(words[1:]); err != nil {
			return bad(err)
		}
		key, opts, err := o.op(fs.Args())
		if err != nil {
			return bad(err)
		}
		return clientv3.OpDelete(key, opts...), nil
	}
	return clientv3.Op{}, fmt.Errorf("malformed request %q: %q is not put, get or del", s, words[0])
}

func (c *ctl) txnCommand() *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "txn [-i]",
		Short: "Run a transaction read from stdin (etcdctl's txn syntax)",
		Long: `Run a transaction read from stdin: comparisons, a blank line, the requests to
run if every comparison holds, a blank line, the requests to run otherwise.

  mod("key1") > "0"

  put key1 "overwrote-key1"

  put key1 "created-key1"
  put key2 "some extra key"

With -i each part is prompted for.`,
		Args: exactArgs(0, "no arguments (the transaction comes from stdin)"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var prompt func(string)
			if interactive {
				prompt = func(s string) { fmt.Fprintln(c.out, s) }
			}
			t, err := readTxn(c.env.Stdin, prompt)
			if err != nil {
				return err
			}
			return c.withClient(cmd, func(ctx context.Context, cli *clientv3.Client) error {
				resp, err := cli.Txn(ctx).If(t.cmps...).Then(t.onSuccess...).Else(t.onFailure...).Commit()
				if err != nil {
					return err
				}
				return c.printTxn(resp)
			})
		},
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "prompt for each part of the transaction")
	return cmd
}

func (c *ctl) printTxn(resp *clientv3.TxnResponse) error {
	if c.g.output == "json" {
		return printJSON(c.out, (*pb.TxnResponse)(resp))
	}
	var buf bytes.Buffer
	if resp.Succeeded {
		buf.WriteString("SUCCESS\n")
	} else {
		buf.WriteString("FAILURE\n")
	}
	for _, r := range resp.Responses {
		buf.WriteByte('\n')
		switch v := r.Response.(type) {
		case *pb.ResponseOp_ResponsePut:
			buf.WriteString("OK\n")
			if v.ResponsePut.PrevKv != nil {
				printKV(&buf, v.ResponsePut.PrevKv, false)
			}
		case *pb.ResponseOp_ResponseRange:
			for _, kv := range v.ResponseRange.Kvs {
				printKV(&buf, kv, false)
			}
		case *pb.ResponseOp_ResponseDeleteRange:
			fmt.Fprintln(&buf, v.ResponseDeleteRange.Deleted)
			for _, kv := range v.ResponseDeleteRange.PrevKvs {
				printKV(&buf, kv, false)
			}
		case *pb.ResponseOp_ResponseTxn:
			buf.WriteString("(nested transaction)\n")
		}
	}
	_, err := c.out.Write(buf.Bytes())
	return err
}
