package recipes_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"ensemble/recipes"

	clientv3 "go.etcd.io/etcd/client/v3"
)

type appSettings struct {
	Name    string `json:"name" yaml:"name"`
	Workers int    `json:"workers" yaml:"workers"`
	DB      struct {
		Host string `json:"host" yaml:"host"`
		Port int    `json:"port" yaml:"port"`
	} `json:"db" yaml:"db"`
}

func validSettings(s *appSettings) error {
	if s.Workers < 1 || s.Workers > 64 {
		return fmt.Errorf("workers %d out of [1, 64]", s.Workers)
	}
	return nil
}

// change is one callback of a Config.
type change struct {
	old, new *appSettings
	rev      int64
}

func testConfigJSON(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	cli := b.client(t)
	pfx := prefix(t)
	// A neighbour whose name starts with ours must not leak in.
	if _, err := cli.Put(ctx, pfx+"-other/workers", "99"); err != nil {
		t.Fatal(err)
	}
	r1, err := cli.Put(ctx, pfx, `{"name":"svc","workers":4,"db":{"host":"db1","port":5432}}`)
	if err != nil {
		t.Fatal(err)
	}
	rejected := make(chan error, 10)
	cfg := recipes.NewConfig(cli, pfx, recipes.ConfigOptions[appSettings]{
		Validate: validSettings,
		Strict:   true,
		OnReject: func(rev int64, err error) { rejected <- err },
	})
	if err := cfg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	changes := make(chan change, 10)
	cfg.OnChange(func(old, new *appSettings, rev int64) { changes <- change{old, new, rev} })
	if got := cfg.Get(); got.Name != "svc" || got.Workers != 4 || got.DB.Host != "db1" || cfg.Revision() != r1.Header.Revision {
		t.Fatalf("loaded %+v at %d", got, cfg.Revision())
	}
	first := cfg.Get()

	// Two keys changed in one transaction arrive as one change.
	resp, err := cli.Txn(ctx).Then(clientv3.OpPut(pfx+"/workers", "8"), clientv3.OpPut(pfx+"/db/host", `"db2"`)).Commit()
	if err != nil {
		t.Fatal(err)
	}
	c := nextChange(t, changes)
	if c.rev != resp.Header.Revision || c.new.Workers != 8 || c.new.DB.Host != "db2" || c.new.DB.Port != 5432 || c.old != first {
		t.Fatalf("change %+v -> %+v at %d", c.old, c.new, c.rev)
	}
	good := cfg.Get()
	goodRev := cfg.Revision()

	// The failure case: invalid configurations are refused and the last
	// good one stays.
	var badRev int64
	for _, bad := range []struct{ key, val string }{
		{pfx + "/colour", `"unknown key"`}, // strict: no such field
		{pfx + "/workers", "1000"},         // fails validation
		{pfx + "/workers", "not json"},     // does not decode
	} {
		pr, err := cli.Put(ctx, bad.key, bad.val)
		if err != nil {
			t.Fatal(err)
		}
		badRev = pr.Header.Revision
		select {
		case err := <-rejected:
			if !errors.Is(err, recipes.ErrInvalidConfig) {
				t.Fatalf("rejection %v does not wrap ErrInvalidConfig", err)
			}
		case c := <-changes:
			t.Fatalf("invalid %s=%s accepted: %+v", bad.key, bad.val, c.new)
		case <-time.After(5 * time.Second):
			t.Fatalf("invalid %s=%s neither accepted nor refused", bad.key, bad.val)
		}
		if cfg.Get() != good || cfg.Revision() != goodRev || cfg.LastError() == nil {
			t.Fatalf("after invalid %s: %+v at %d, last error %v", bad.key, cfg.Get(), cfg.Revision(), cfg.LastError())
		}
		if bad.key == pfx+"/colour" {
			if _, err := cli.Delete(ctx, bad.key); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := cli.Put(ctx, pfx+"/workers", "16"); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.new.Workers != 16 || cfg.LastError() != nil {
		t.Fatalf("valid value after invalid ones: %+v, last error %v", c.new, cfg.LastError())
	}

	// Earlier revisions can be read and restored.
	old, err := cfg.At(ctx, r1.Header.Revision)
	if err != nil || old.Workers != 4 || old.DB.Host != "db1" {
		t.Fatalf("At(%d) = %+v, %v", r1.Header.Revision, old, err)
	}
	if _, err := cfg.At(ctx, badRev); !errors.Is(err, recipes.ErrInvalidConfig) {
		t.Fatalf("At an invalid revision = %v", err)
	}
	if _, err := cfg.Rollback(ctx, badRev); !errors.Is(err, recipes.ErrInvalidConfig) {
		t.Fatalf("Rollback to an invalid revision = %v", err)
	}
	rb, err := cfg.Rollback(ctx, r1.Header.Revision)
	if err != nil {
		t.Fatal(err)
	}
	c = nextChange(t, changes)
	if c.rev != rb || c.new.Workers != 4 || c.new.DB.Host != "db1" {
		t.Fatalf("after rollback %+v at %d (rollback at %d)", c.new, c.rev, rb)
	}
	g, err := cli.Get(ctx, pfx+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || g.Count != 0 {
		t.Fatalf("keys left under %s/ after rollback: %v %v", pfx, g, err)
	}
}

func nextChange(t *testing.T, ch <-chan change) change {
	t.Helper()
	select {
	case c := <-ch:
		return c
	case <-time.After(5 * time.Second):
		t.Fatal("no configuration change within 5s")
	}
	return change{}
}

func testConfigYAML(t *testing.T, b *backend) {
	ctx := ctxFor(t, 30*time.Second)
	cli := b.client(t)
	pfx := prefix(t)
	if _, err := cli.Put(ctx, pfx+"/name", "svc"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, pfx+"/workers", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, pfx+"/db", "host: db1\nport: 5432\n"); err != nil {
		t.Fatal(err)
	}
	cfg := recipes.NewConfig(cli, pfx, recipes.ConfigOptions[appSettings]{Format: recipes.YAML, Validate: validSettings})
	if err := cfg.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cfg.Close()
	if got := cfg.Get(); got.Name != "svc" || got.Workers != 3 || got.DB.Port != 5432 {
		t.Fatalf("loaded %+v", got)
	}
	changes := make(chan change, 10)
	cfg.OnChange(func(old, new *appSettings, rev int64) { changes <- change{old, new, rev} })
	if _, err := cli.Put(ctx, pfx+"/db/port", "6543"); err != nil {
		t.Fatal(err)
	}
	if c := nextChange(t, changes); c.new.DB.Port != 6543 || c.new.DB.Host != "db1" {
		t.Fatalf("after change %+v", c.new)
	}

	// An invalid stored configuration makes Start fail without a default.
	bad := pfx + "-bad"
	if _, err := cli.Put(ctx, bad+"/workers", "0"); err != nil {
		t.Fatal(err)
	}
	badCfg := recipes.NewConfig(cli, bad, recipes.ConfigOptions[appSettings]{Format: recipes.YAML, Validate: validSettings})
	if err := badCfg.Start(ctx); !errors.Is(err, recipes.ErrInvalidConfig) {
		t.Fatalf("Start on invalid configuration = %v", err)
	}
	def := &appSettings{Workers: 1}
	withDefault := recipes.NewConfig(cli, bad, recipes.ConfigOptions[appSettings]{Format: recipes.YAML, Validate: validSettings, Default: def})
	if err := withDefault.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer withDefault.Close()
	if withDefault.Get() != def || withDefault.LastError() == nil {
		t.Fatalf("default not served: %+v, %v", withDefault.Get(), withDefault.LastError())
	}
}
