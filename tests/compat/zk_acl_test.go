package compat

import (
	"fmt"
	"slices"
	"testing"

	"ensemble/internal/api/zk/jute"
	"ensemble/tests/framework"

	"github.com/go-zookeeper/zk"
)

// TestZKACL checks the world, auth, digest and ip schemes and the NOAUTH
// every operation gives when its permission is missing, with the owner and
// the stranger on different members.
func TestZKACL(t *testing.T) {
	zkClusters(t, func(t *testing.T, c *framework.InProcessCluster, addrs []string) {
		alice := framework.ZKConnect(t, addrs[0])
		if err := alice.AddAuth("digest", []byte("alice:secret")); err != nil {
			t.Fatalf("addAuth: %v", err)
		}
		stranger := framework.ZKConnect(t, addrs[len(addrs)-1])
		aliceACL := zk.DigestACL(zk.PermAll, "alice", "secret")
		t.Run("Digest", func(t *testing.T) { testZKDigest(t, addrs, alice, stranger, aliceACL) })
		t.Run("Auth", func(t *testing.T) { testZKAuthScheme(t, alice, stranger, aliceACL) })
		t.Run("WorldPerms", func(t *testing.T) { testZKWorldPerms(t, alice, stranger) })
		t.Run("IP", func(t *testing.T) { testZKIP(t, alice, stranger) })
		t.Run("GetACLRedacted", func(t *testing.T) { testZKGetACLRedacted(t, alice, stranger, aliceACL) })
	})
}

// sync makes c's member catch up, so that c reads what another member wrote.
func zkSync(t testing.TB, c *zk.Conn, path string) {
	t.Helper()
	if _, err := c.Sync(path); err != nil {
		t.Fatalf("sync %s: %v", path, err)
	}
}

func testZKDigest(t *testing.T, addrs []string, alice, stranger *zk.Conn, aliceACL []zk.ACL) {
	zkMustCreateACL(t, alice, "/dig", []byte("secret data"), aliceACL)
	zkSync(t, stranger, "/dig")
	noAuth := func(who string, c *zk.Conn) {
		t.Helper()
		_, _, err := c.Get("/dig")
		zkWantErr(t, who+" getData", err, zk.ErrNoAuth)
		_, err = c.Set("/dig", nil, -1)
		zkWantErr(t, who+" setData", err, zk.ErrNoAuth)
		_, _, err = c.Children("/dig")
		zkWantErr(t, who+" getChildren2", err, zk.ErrNoAuth)
		_, err = c.Create("/dig/kid", nil, zk.FlagPersistent, zkWorld)
		zkWantErr(t, who+" create a child", err, zk.ErrNoAuth)
		_, err = c.SetACL("/dig", zkWorld, -1)
		zkWantErr(t, who+" setACL", err, zk.ErrNoAuth)
		_, _, err = c.GetACL("/dig")
		zkWantErr(t, who+" getACL without READ or ADMIN", err, zk.ErrNoAuth)
		_, err = c.Multi(&zk.SetDataRequest{Path: "/dig", Version: -1})
		zkWantErr(t, who+" setData in a multi", err, zk.ErrNoAuth)
		// exists needs READ on a node that exists, since ZooKeeper 3.8.4
		// and 3.9.2 (ZOOKEEPER-2590); on a missing node it checks nothing.
		_, _, err = c.Exists("/dig")
		zkWantErr(t, who+" exists", err, zk.ErrNoAuth)
		if ok, _, err := c.Exists("/dig-missing"); ok || err != nil {
			t.Errorf("%s exists on a missing node: %v %v", who, ok, err)
		}
	}
	noAuth("a stranger", stranger)
	// Authenticated with the wrong password is still a stranger.
	wrong := framework.ZKConnect(t, addrs[0])
	if err := wrong.AddAuth("digest", []byte("alice:wrong")); err != nil {
		t.Fatalf("addAuth with another password: %v", err)
	}
	noAuth("alice with a wrong password", wrong)

	if data, _ := zkMustGet(t, alice, "/dig"); string(data) != "secret data" {
		t.Errorf("alice reads %q", data)
	}
	acl, _, err := alice.GetACL("/dig")
	if err != nil || !slices.Equal(acl, aliceACL) {
		t.Errorf("getACL: %v %v, want %v", acl, err, aliceACL)
	}
	// The same identity on another member, through the raw client.
	r := framework.NewZKRawSession(t, addrs[len(addrs)-1], 30000)
	if h, err := r.CallXid(jute.XidAuth, jute.OpAuth, &jute.AuthPacket{Scheme: "digest", Auth: []byte("alice:secret")}, nil); err != nil || h.Err != jute.CodeOK {
		t.Fatalf("raw auth: %+v %v", h, err)
	}
	var gd jute.GetDataResponse
	r.MustDo(jute.OpGetData, &jute.GetDataRequest{Path: "/dig"}, &gd)
	if string(gd.Data) != "secret data" {
		t.Errorf("alice on another member reads %q", gd.Data)
	}
	r.MustDo(jute.OpCreate, &jute.CreateRequest{Path: "/dig/kid", ACL: rawWorld}, &jute.CreateResponse{})
	zkSync(t, stranger, "/dig/kid")
	zkWantErr(t, "a stranger deletes alice's child", stranger.Delete("/dig/kid", -1), zk.ErrNoAuth)
	if err := alice.Delete("/dig/kid", -1); err != nil {
		t.Errorf("alice deletes her child: %v", err)
	}
}

func zkMustCreateACL(t testing.TB, c *zk.Conn, path string, data []byte, acl []zk.ACL) {
	t.Helper()
	if _, err := c.Create(path, data, zk.FlagPersistent, acl); err != nil {
		t.Fatalf("create %s with %v: %v", path, acl, err)
	}
}

// testZKAuthScheme checks scheme auth: it stands for the creator's
// authenticated identities and is stored as them.
func testZKAuthScheme(t *testing.T, alice, stranger *zk.Conn, aliceACL []zk.ACL) {
	zkMustCreateACL(t, alice, "/authn", []byte("a"), zk.AuthACL(zk.PermAll))
	acl, _, err := alice.GetACL("/authn")
	if err != nil || !slices.Equal(acl, aliceACL) {
		t.Errorf("getACL of an auth-scheme node: %v %v, want %v", acl, err, aliceACL)
	}
	zkSync(t, stranger, "/authn")
	_, _, err = stranger.Get("/authn")
	zkWantErr(t, "a stranger reads an auth-scheme node", err, zk.ErrNoAuth)

	// Without ADMIN, alice can neither change the ACL nor see its hash.
	zkMustCreateACL(t, alice, "/authn-rw", []byte("a"), zk.AuthACL(zk.PermRead|zk.PermWrite))
	if _, err := alice.Set("/authn-rw", []byte("b"), -1); err != nil {
		t.Errorf("alice writes: %v", err)
	}
	_, err = alice.SetACL("/authn-rw", zkWorld, -1)
	zkWantErr(t, "setACL without ADMIN", err, zk.ErrNoAuth)
	acl, _, err = alice.GetACL("/authn-rw")
	want := []zk.ACL{{Perms: zk.PermRead | zk.PermWrite, Scheme: "digest", ID: "alice:x"}}
	if err != nil || !slices.Equal(acl, want) {
		t.Errorf("getACL with READ but not ADMIN: %v %v, want %v", acl, err, want)
	}
}

// testZKWorldPerms checks each permission bit against the op that needs it.
func testZKWorldPerms(t *testing.T, owner, other *zk.Conn) {
	for _, tc := range []struct {
		perms int32
		op    string
	}{
		{zk.PermAll &^ zk.PermRead, "read"},
		{zk.PermAll &^ zk.PermWrite, "write"},
		{zk.PermAll &^ zk.PermCreate, "create"},
		{zk.PermAll &^ zk.PermDelete, "delete"},
		{zk.PermAll &^ zk.PermAdmin, "admin"},
	} {
		p := "/world-no-" + tc.op
		// The child is made first, while the node is still open.
		zkMustCreate(t, owner, p, []byte("x"), zk.FlagPersistent)
		zkMustCreate(t, owner, p+"/kid", nil, zk.FlagPersistent)
		if _, err := owner.SetACL(p, zk.WorldACL(tc.perms), -1); err != nil {
			t.Fatalf("setACL %s: %v", p, err)
		}
		zkSync(t, other, p)
		check := func(what string, err error, needs string) {
			t.Helper()
			want := error(nil)
			if needs == tc.op {
				want = zk.ErrNoAuth
			}
			zkWantErr(t, fmt.Sprintf("%s on %s", what, p), err, want)
		}
		_, _, err := other.Get(p)
		check("getData", err, "read")
		_, _, err = other.Children(p)
		check("getChildren2", err, "read")
		_, err = other.Set(p, []byte("y"), -1)
		check("setData", err, "write")
		_, err = other.Create(p+"/new", nil, zk.FlagPersistent, zkWorld)
		check("create a child", err, "create")
		err = other.Delete(p+"/kid", -1)
		check("delete a child", err, "delete")
		_, err = other.SetACL(p, zk.WorldACL(tc.perms), -1)
		check("setACL", err, "admin")
	}
}

// testZKIP checks scheme ip with an address and a network; the clients come
// from 127.0.0.1.
func testZKIP(t *testing.T, owner, other *zk.Conn) {
	for _, tc := range []struct {
		id      string
		allowed bool
	}{
		{"127.0.0.1", true},
		{"127.0.0.0/8", true},
		{"127.0.0.1/32", true},
		{"10.1.2.3", false},
		{"10.0.0.0/8", false},
		{"127.0.0.2", false},
	} {
		p := "/ip-" + sanitizeZK(tc.id)
		zkMustCreateACL(t, owner, p, []byte("ip"), []zk.ACL{{Perms: zk.PermAll, Scheme: "ip", ID: tc.id}})
		zkSync(t, other, p)
		_, _, err := other.Get(p)
		var want error
		if !tc.allowed {
			want = zk.ErrNoAuth
		}
		zkWantErr(t, "getData of a node open to ip:"+tc.id, err, want)
	}
}

func sanitizeZK(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c == '/' || c == '.' {
			b[i] = '_'
		}
	}
	return string(b)
}

// testZKGetACLRedacted checks getACL by a session with READ but not ADMIN:
// ZooKeeper answers, with digest hashes replaced by "x".
func testZKGetACLRedacted(t *testing.T, alice, stranger *zk.Conn, aliceACL []zk.ACL) {
	acl := append(slices.Clone(aliceACL), zk.WorldACL(zk.PermRead)...)
	zkMustCreateACL(t, alice, "/redacted", nil, acl)
	zkSync(t, stranger, "/redacted")
	got, _, err := stranger.GetACL("/redacted")
	want := []zk.ACL{{Perms: zk.PermAll, Scheme: "digest", ID: "alice:x"}, {Perms: zk.PermRead, Scheme: "world", ID: "anyone"}}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("getACL with READ only: %v %v, want %v", got, err, want)
	}
	got, _, err = alice.GetACL("/redacted")
	if err != nil || !slices.Equal(got, acl) {
		t.Errorf("getACL with ADMIN: %v %v, want %v", got, err, acl)
	}
}
