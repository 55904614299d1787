// Command configcenter is a service that takes its settings from a
// configuration centre and reloads them live, refusing invalid ones.
//
//	go run ./examples/configcenter --endpoints 127.0.0.1:2379 --prefix /config/greeter
//	etcdctl put /config/greeter '{"greeting":"Hello","repeat":1}'
//	etcdctl put /config/greeter/greeting '"Bonjour"'   # reloaded at once
//	etcdctl put /config/greeter/repeat 0               # refused: last good kept
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Settings is what the service reads from the configuration centre.
type Settings struct {
	Greeting string `json:"greeting"`
	Repeat   int    `json:"repeat"`
}

// validate refuses settings the service cannot run with.
func validate(s *Settings) error {
	if s.Greeting == "" {
		return errors.New("greeting is empty")
	}
	if s.Repeat < 1 || s.Repeat > 10 {
		return fmt.Errorf("repeat %d is not in [1, 10]", s.Repeat)
	}
	return nil
}

// Greeter is the service: every request reads the current settings, which
// the configuration centre swaps underneath it without a restart.
type Greeter struct {
	cfg *recipes.Config[Settings]
}

// NewGreeter loads the settings under prefix and follows their changes,
// logging each accepted and refused one to log.
func NewGreeter(ctx context.Context, cli *clientv3.Client, prefix string, log io.Writer) (*Greeter, error) {
	cfg := recipes.NewConfig(cli, prefix, recipes.ConfigOptions[Settings]{
		Validate: validate,
		Strict:   true,
		OnReject: func(rev int64, err error) {
			fmt.Fprintf(log, "refused settings at revision %d: %v\n", rev, err)
		},
	})
	cfg.OnChange(func(old, new *Settings, rev int64) {
		fmt.Fprintf(log, "settings changed at revision %d: %+v\n", rev, *new)
	})
	if err := cfg.Start(ctx); err != nil {
		return nil, err
	}
	return &Greeter{cfg: cfg}, nil
}

// Greet answers one request.
func (g *Greeter) Greet(name string) string {
	s := g.cfg.Get()
	return strings.TrimSpace(strings.Repeat(s.Greeting+", "+name+"! ", s.Repeat))
}

// Close stops following the settings.
func (g *Greeter) Close() { g.cfg.Close() }

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs")
	prefix := flag.String("prefix", "/config/greeter", "where the settings live")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, strings.Split(*endpoints, ","), *prefix, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "configcenter:", err)
		os.Exit(1)
	}
}

// run greets "world" every second with the current settings until ctx ends.
func run(ctx context.Context, endpoints []string, prefix string, out io.Writer) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	g, err := NewGreeter(ctx, cli, prefix, out)
	if err != nil {
		return err
	}
	defer g.Close()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		fmt.Fprintln(out, g.Greet("world"))
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}
