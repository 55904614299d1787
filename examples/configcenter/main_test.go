package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"ensemble/tests/framework"
)

// lines is an io.Writer that hands each written line to a channel.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	for _, s := range strings.Split(strings.TrimRight(string(p), "\n"), "\n") {
		l <- s
	}
	return len(p), nil
}

func (l lines) expect(t *testing.T, contains string) {
	t.Helper()
	for {
		select {
		case s := <-l:
			if strings.Contains(s, contains) {
				return
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("no line containing %q", contains)
		}
	}
}

func TestGreeterReloadsLive(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	ctx := framework.Ctx(t)
	if _, err := cli.Put(ctx, "/config/greeter", `{"greeting":"Hello","repeat":1}`); err != nil {
		t.Fatal(err)
	}
	log := make(lines, 100)
	g, err := NewGreeter(ctx, cli, "/config/greeter", log)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := g.Greet("Ada"); got != "Hello, Ada!" {
		t.Fatalf("Greet = %q", got)
	}
	if _, err := cli.Put(ctx, "/config/greeter/greeting", `"Bonjour"`); err != nil {
		t.Fatal(err)
	}
	log.expect(t, "settings changed")
	if got := g.Greet("Ada"); got != "Bonjour, Ada!" {
		t.Fatalf("after reload Greet = %q", got)
	}
	// An invalid change is refused and the service keeps its settings.
	if _, err := cli.Put(ctx, "/config/greeter/repeat", "0"); err != nil {
		t.Fatal(err)
	}
	log.expect(t, "refused settings")
	if got := g.Greet("Ada"); got != "Bonjour, Ada!" {
		t.Fatalf("after invalid change Greet = %q", got)
	}
	if _, err := cli.Put(ctx, "/config/greeter/repeat", "2"); err != nil {
		t.Fatal(err)
	}
	log.expect(t, "settings changed")
	if got := g.Greet("Ada"); got != "Bonjour, Ada! Bonjour, Ada!" {
		t.Fatalf("Greet = %q", got)
	}
}

func TestRunProgram(t *testing.T) {
	c := framework.StartInProcess(t, 3)
	cli := framework.NewClient(t, c.Spec.Endpoints()...)
	if _, err := cli.Put(framework.Ctx(t), "/config/p", `{"greeting":"Hi","repeat":1}`); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := make(lines, 100)
	done := make(chan error, 1)
	go func() { done <- run(ctx, c.Spec.Endpoints(), "/config/p", out) }()
	out.expect(t, "Hi, world!")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
