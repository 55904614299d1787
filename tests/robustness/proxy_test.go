package robustness

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// echo serves an echo server on 127.0.0.1 and returns its address.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }()
		}
	}()
	return ln.Addr().String()
}

// dialFrom connects to addr from member i's source address.
func dialFrom(t *testing.T, i int, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(memberIP(i))}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from m%d: %v", i+1, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// roundTrip reports whether a byte sent on c comes back within a short
// deadline (the deadline only bounds the wait for bytes that must not come).
func roundTrip(c net.Conn) error {
	if _, err := c.Write([]byte{'x'}); err != nil {
		return err
	}
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var b [1]byte
	_, err := io.ReadFull(c, b[:])
	return err
}

func TestProxyCutsByDirectionlessPairAndHeals(t *testing.T) {
	n := NewNetwork()
	defer n.Close()
	addr, err := n.AddProxy(0, echo(t))
	if err != nil {
		t.Fatal(err)
	}
	from1, from2 := dialFrom(t, 1, addr), dialFrom(t, 2, addr)
	for _, c := range []net.Conn{from1, from2} {
		if err := roundTrip(c); err != nil {
			t.Fatalf("before any cut: %v", err)
		}
	}

	// Drop: m2's connection to m0 is closed and new ones refused; m1 is
	// not affected.
	n.Partition(Drop, []int{2}, []int{0})
	if err := roundTrip(from2); err == nil {
		t.Fatal("cut connection still carries bytes")
	}
	if err := roundTrip(dialFrom(t, 2, addr)); err == nil {
		t.Fatal("new connection across a cut carries bytes")
	}
	if err := roundTrip(from1); err != nil {
		t.Fatalf("uncut member: %v", err)
	}
	n.Heal()
	if err := roundTrip(dialFrom(t, 2, addr)); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	// Blackhole: the connection stays up but nothing crosses it; healing
	// closes it so both ends redial.
	bh := dialFrom(t, 2, addr)
	if err := roundTrip(bh); err != nil {
		t.Fatal(err)
	}
	n.Partition(Blackhole, []int{0}, []int{2})
	if err := roundTrip(bh); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("blackholed connection: %v, want a timeout", err)
	}
	n.Heal()
	bh.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := bh.Read(make([]byte, 1)); err == nil {
		t.Fatal("blackholed connection not closed by heal")
	}
	if err := roundTrip(dialFrom(t, 2, addr)); err != nil {
		t.Fatalf("after heal: %v", err)
	}
}
