package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.etcd.io/etcd/api/v3/mvccpb"
)

// The printers write results in the three formats of --write-out:
//
//   - simple: etcdctl's plain lines where etcdctl has them, so that scripts
//     written for etcdctl keep working;
//   - json: one JSON document per result, in etcd's JSON shapes (the
//     protobuf messages through encoding/json, as etcdctl prints them);
//   - table: aligned columns for people; verbs without a natural table
//     print as simple.

// printJSON writes v as one line of JSON.
func printJSON(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("cannot encode the result as JSON: %w", err)
	}
	b = append(b, '\n')
	_, err = w.Write(b)
	return err
}

// printKV writes a key and its value on two lines, as etcdctl does.
func printKV(buf *bytes.Buffer, kv *mvccpb.KeyValue, valueOnly bool) {
	if !valueOnly {
		buf.Write(kv.Key)
		buf.WriteByte('\n')
	}
	buf.Write(kv.Value)
	buf.WriteByte('\n')
}

// table is a grid of cells printed with aligned columns and a border.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// render writes the table:
//
//	+----------+-------+
//	| ENDPOINT | STATE |
//	+----------+-------+
//	| a:2379   | ok    |
//	+----------+-------+
func (t *table) render(w io.Writer) error {
	widths := make([]int, len(t.header))
	cell := func(row []string, i int) string {
		if i < len(row) {
			return displayable(row[i])
		}
		return ""
	}
	for i, h := range t.header {
		widths[i] = utf8.RuneCountInString(h)
	}
	for _, r := range t.rows {
		for i := range widths {
			widths[i] = max(widths[i], utf8.RuneCountInString(cell(r, i)))
		}
	}
	var b strings.Builder
	rule := func() {
		for _, wd := range widths {
			b.WriteByte('+')
			b.WriteString(strings.Repeat("-", wd+2))
		}
		b.WriteString("+\n")
	}
	line := func(row []string) {
		for i, wd := range widths {
			s := cell(row, i)
			b.WriteString("| ")
			b.WriteString(s)
			b.WriteString(strings.Repeat(" ", wd-utf8.RuneCountInString(s)+1))
		}
		b.WriteString("|\n")
	}
	rule()
	line(t.header)
	rule()
	for _, r := range t.rows {
		line(r)
	}
	rule()
	_, err := io.WriteString(w, b.String())
	return err
}

// displayable keeps a cell on one line and free of control characters, so
// that the columns stay aligned whatever a value holds.
func displayable(s string) string {
	for _, r := range s {
		if r < ' ' || r == 0x7f || r == utf8.RuneError {
			q := strconv.Quote(s)
			return q[1 : len(q)-1]
		}
	}
	return s
}

// humanBytes formats n with SI units, as etcdctl's tables do ("25 kB").
func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v := float64(n)
	for _, suffix := range []string{"kB", "MB", "GB", "TB", "PB"} {
		v /= unit
		if v < unit || suffix == "PB" {
			if v < 10 {
				return fmt.Sprintf("%.1f %s", v, suffix)
			}
			return fmt.Sprintf("%.0f %s", v, suffix)
		}
	}
	return fmt.Sprintf("%d B", n)
}
