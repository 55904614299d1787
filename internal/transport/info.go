package transport

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"time"
)

// maxInfoSize bounds an info answer: a member list, never large.
const maxInfoSize = 16 << 20

// ErrNoInfo is returned by FetchInfo when the member has no answer to give.
var ErrNoInfo = errors.New("transport: member has no cluster information to give")

func (t *Transport) answerInfo(c net.Conn) {
	var info []byte
	if t.cfg.Info != nil {
		info = t.cfg.Info()
	}
	c.SetWriteDeadline(time.Now().Add(t.cfg.HandshakeTimeout))
	buf := []byte{statusOK}
	buf = binary.AppendUvarint(buf, uint64(len(info)))
	buf = append(buf, info...)
	if _, err := c.Write(buf); err != nil {
		t.lg.Debug("answering an info request failed", "remote", c.RemoteAddr().String(), "err", err)
	}
}

// FetchInfo asks the member listening at url (a peer URL) for its cluster
// information, as given by that member's Config.Info.
func FetchInfo(ctx context.Context, url string) ([]byte, error) {
	hosts := hostPorts([]string{url})
	if len(hosts) == 0 {
		return nil, fmt.Errorf("transport: bad peer url %q", url)
	}
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", hosts[0])
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	var hb [handshakeSize]byte
	handshake{kind: kindInfo}.encode(&hb)
	if _, err := c.Write(hb[:]); err != nil {
		return nil, err
	}
	br := bufio.NewReader(c)
	status, err := br.ReadByte()
	if err != nil {
		return nil, err
	}
	if err := statusError(status); err != nil {
		return nil, err
	}
	n, err := binary.ReadUvarint(br)
	if err != nil {
		return nil, fmt.Errorf("%w: info length: %v", ErrBadFrame, err)
	}
	if n > maxInfoSize {
		return nil, fmt.Errorf("%w: info of %d bytes", ErrFrameTooLarge, n)
	}
	if n == 0 {
		return nil, ErrNoInfo
	}
	info := make([]byte, n)
	if _, err := io.ReadFull(br, info); err != nil {
		return nil, err
	}
	return info, nil
}
