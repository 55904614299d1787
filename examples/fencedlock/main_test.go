package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

func TestStaleTokenIsRefused(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	ctx := framework.Ctx(t)
	st := &Storage{}
	a, err := NewWorker(cli, "A", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := NewWorker(cli, "B", 5)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ta, err := a.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Write(st, "1"); err != nil {
		t.Fatal(err)
	}
	a.Stall()
	tb, err := b.Lock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if tb <= ta {
		t.Fatalf("B's token %d is not above A's %d", tb, ta)
	}
	if err := b.Write(st, "2"); err != nil {
		t.Fatal(err)
	}
	if err := a.Write(st, "3"); !errors.Is(err, ErrStaleToken) {
		t.Fatalf("stale write: %v", err)
	}
	if got := fmt.Sprint(st.Data()); got != "[A: 1 B: 2]" {
		t.Fatalf("storage holds %s", got)
	}
}

func TestRunProgram(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, c.Spec.Endpoints(), &out); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "refused") {
		t.Fatalf("output:\n%s", out.String())
	}
}
