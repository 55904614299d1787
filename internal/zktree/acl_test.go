package zktree

import (
	"slices"
	"testing"

	"ensemble/internal/api/zk/jute"
)

func acl(perms jute.Perm, scheme, id string) jute.ACL {
	return jute.ACL{Perms: perms, ID: jute.Id{Scheme: scheme, ID: id}}
}

func TestDigestID(t *testing.T) {
	// The example of ZooKeeper's administrator guide.
	if got := DigestID("super:test"); got != "super:D/InIHSb7yEEbrWz8b9l71RjZJU=" {
		t.Fatalf("DigestID: %s", got)
	}
	if got := DigestID("user:pa:ss"); got[:5] != "user:" {
		t.Fatalf("password with a colon: %s", got)
	}
}

func TestAllowed(t *testing.T) {
	bob := jute.Id{Scheme: "digest", ID: DigestID("bob:pw")}
	local := jute.Id{Scheme: "ip", ID: "10.1.2.3"}
	local6 := jute.Id{Scheme: "ip", ID: "fe80::1:2"}
	for _, tc := range []struct {
		name string
		acl  []jute.ACL
		perm jute.Perm
		ids  []jute.Id
		want bool
	}{
		{"empty acl", nil, jute.PermAdmin, nil, true},
		{"world", []jute.ACL{acl(jute.PermRead, "world", "anyone")}, jute.PermRead, nil, true},
		{"world other perm", []jute.ACL{acl(jute.PermRead, "world", "anyone")}, jute.PermWrite, nil, false},
		{"world other id", []jute.ACL{acl(jute.PermAll, "world", "someone")}, jute.PermRead, nil, false},
		{"digest match", []jute.ACL{acl(jute.PermAll, "digest", bob.ID)}, jute.PermDelete, []jute.Id{local, bob}, true},
		{"digest other", []jute.ACL{acl(jute.PermAll, "digest", DigestID("eve:pw"))}, jute.PermRead, []jute.Id{bob}, false},
		{"digest id as ip", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.3")}, jute.PermRead, []jute.Id{{Scheme: "digest", ID: "10.1.2.3"}}, false},
		{"ip exact", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.3")}, jute.PermRead, []jute.Id{local}, true},
		{"ip other", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.4")}, jute.PermRead, []jute.Id{local}, false},
		{"ip /8", []jute.ACL{acl(jute.PermAll, "ip", "10.0.0.0/8")}, jute.PermRead, []jute.Id{local}, true},
		{"ip /31", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.2/31")}, jute.PermRead, []jute.Id{local}, true},
		{"ip /32 other", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.2/32")}, jute.PermRead, []jute.Id{local}, false},
		{"ip /0", []jute.ACL{acl(jute.PermAll, "ip", "0.0.0.0/0")}, jute.PermRead, []jute.Id{local}, true},
		{"ip v6 prefix", []jute.ACL{acl(jute.PermAll, "ip", "fe80::/64")}, jute.PermRead, []jute.Id{local6}, true},
		{"ip v6 other", []jute.ACL{acl(jute.PermAll, "ip", "fe81::/64")}, jute.PermRead, []jute.Id{local6}, false},
		{"ip v4 vs v6", []jute.ACL{acl(jute.PermAll, "ip", "0.0.0.0/0")}, jute.PermRead, []jute.Id{local6}, false},
		{"ip mapped", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.3")}, jute.PermRead, []jute.Id{{Scheme: "ip", ID: "::ffff:10.1.2.3"}}, true},
		{"ip bad bits", []jute.ACL{acl(jute.PermAll, "ip", "10.1.2.3/33")}, jute.PermRead, []jute.Id{local}, false},
		{"super", []jute.ACL{acl(jute.PermRead, "digest", bob.ID)}, jute.PermAdmin, []jute.Id{{Scheme: "super"}}, true},
		{"digest user super is nobody special", []jute.ACL{acl(jute.PermRead, "world", "anyone")}, jute.PermAdmin, []jute.Id{{Scheme: "digest", ID: DigestID("super:x")}}, false},
		{"second entry", []jute.ACL{acl(jute.PermRead, "world", "anyone"), acl(jute.PermWrite, "digest", bob.ID)}, jute.PermWrite, []jute.Id{bob}, true},
	} {
		if got := Allowed(tc.acl, tc.perm, tc.ids); got != tc.want {
			t.Errorf("%s: Allowed = %v, want %v", tc.name, got, tc.want)
		}
		// The stored form agrees.
		raw := appendUvarint(nil, uint64(len(tc.acl)))
		for _, a := range tc.acl {
			raw = appendACL(raw, a.Perms, a.ID.Scheme, a.ID.ID)
		}
		if got := allowedRaw(raw, tc.perm, tc.ids); got != tc.want {
			t.Errorf("%s: allowedRaw = %v, want %v", tc.name, got, tc.want)
		}
		if dec, err := decodeACL(raw); err != nil || len(dec) != len(tc.acl) || len(dec) > 0 && !slices.Equal(dec, tc.acl) {
			t.Errorf("%s: decodeACL %+v %v", tc.name, dec, err)
		}
	}
}

func TestFixACL(t *testing.T) {
	bob := jute.Id{Scheme: "digest", ID: DigestID("bob:pw")}
	ip := jute.Id{Scheme: "ip", ID: "127.0.0.1"}
	x509 := jute.Id{Scheme: "x509", ID: "CN=client"}
	for _, tc := range []struct {
		name string
		in   []jute.ACL
		auth []jute.Id
		want []jute.ACL // nil: INVALIDACL
	}{
		{"open", openACLs, nil, openACLs},
		{"empty", nil, nil, nil},
		{"world someone", []jute.ACL{acl(jute.PermAll, "world", "someone")}, nil, nil},
		{"unknown scheme", []jute.ACL{acl(jute.PermAll, "sasl", "bob")}, nil, nil},
		{"super scheme", []jute.ACL{acl(jute.PermAll, "super", "")}, nil, nil},
		{"digest ok", []jute.ACL{acl(jute.PermRead, "digest", "bob:hash")}, nil, []jute.ACL{acl(jute.PermRead, "digest", "bob:hash")}},
		{"digest trailing colons", []jute.ACL{acl(jute.PermRead, "digest", "bob:hash::")}, nil, []jute.ACL{acl(jute.PermRead, "digest", "bob:hash::")}},
		{"digest no hash", []jute.ACL{acl(jute.PermRead, "digest", "bob:")}, nil, nil},
		{"digest no colon", []jute.ACL{acl(jute.PermRead, "digest", "bob")}, nil, nil},
		{"digest three parts", []jute.ACL{acl(jute.PermRead, "digest", "a:b:c")}, nil, nil},
		{"ip ok", []jute.ACL{acl(jute.PermRead, "ip", "10.0.0.0/8")}, nil, []jute.ACL{acl(jute.PermRead, "ip", "10.0.0.0/8")}},
		{"ip v6", []jute.ACL{acl(jute.PermRead, "ip", "::1")}, nil, []jute.ACL{acl(jute.PermRead, "ip", "::1")}},
		{"ip bad", []jute.ACL{acl(jute.PermRead, "ip", "10.0.0")}, nil, nil},
		{"ip bad octet", []jute.ACL{acl(jute.PermRead, "ip", "10.0.0.256")}, nil, nil},
		{"ip bad bits", []jute.ACL{acl(jute.PermRead, "ip", "10.0.0.0/40")}, nil, nil},
		{"ip name", []jute.ACL{acl(jute.PermRead, "ip", "localhost")}, nil, nil},
		{"auth without ids", []jute.ACL{acl(jute.PermAll, "auth", "")}, []jute.Id{ip}, nil},
		{"auth expands", []jute.ACL{acl(jute.PermAll, "auth", "ignored")}, []jute.Id{ip, bob, x509},
			[]jute.ACL{acl(jute.PermAll, "digest", bob.ID), acl(jute.PermAll, "x509", x509.ID)}},
		{"duplicates dropped", []jute.ACL{openACLs[0], acl(jute.PermRead, "ip", "::1"), openACLs[0]}, nil,
			[]jute.ACL{openACLs[0], acl(jute.PermRead, "ip", "::1")}},
	} {
		raw, code := fixACL(tc.in, tc.auth)
		if tc.want == nil {
			if code != jute.CodeInvalidACL {
				t.Errorf("%s: code %v, want INVALIDACL", tc.name, code)
			}
			continue
		}
		got, err := decodeACL(raw)
		if code != jute.CodeOK || err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s: %+v %v %v, want %+v", tc.name, got, code, err, tc.want)
		}
	}
}

// TestAuthSchemeOnCreate stores the session's identities in place of an
// "auth" entry, and checks them on the next op.
func TestAuthSchemeOnCreate(t *testing.T) {
	e := newEnv(t)
	bob := jute.Id{Scheme: "digest", ID: DigestID("bob:pw")}
	e.create("/x", nil, jute.ModePersistent)
	e.auth = []jute.Id{{Scheme: "ip", ID: "127.0.0.1"}}
	e.expect(jute.CodeInvalidACL, jute.OpCreate, &jute.CreateRequest{Path: "/b", ACL: []jute.ACL{acl(jute.PermAll, "auth", "")}})
	e.auth = append(e.auth, bob)
	e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: "/b", ACL: []jute.ACL{acl(jute.PermAll, "auth", "")}})
	if got := e.get("/b").ACL; !slices.Equal(got, []jute.ACL{acl(jute.PermAll, "digest", bob.ID)}) {
		t.Fatalf("stored ACL %+v", got)
	}
	e.mustOK(jute.OpCreate, &jute.CreateRequest{Path: "/b/c", ACL: openACLs})
	e.auth = []jute.Id{{Scheme: "ip", ID: "127.0.0.1"}}
	e.expect(jute.CodeNoAuth, jute.OpDelete, &jute.DeleteRequest{Path: "/b/c", Version: -1})
	// An ip ACL lets the address in.
	e.auth = append(e.auth, bob)
	e.mustOK(jute.OpSetACL, &jute.SetACLRequest{Path: "/b", ACL: []jute.ACL{acl(jute.PermAll, "ip", "127.0.0.0/8")}, Version: -1})
	e.auth = []jute.Id{{Scheme: "ip", ID: "127.0.0.9"}}
	e.mustOK(jute.OpDelete, &jute.DeleteRequest{Path: "/b/c", Version: -1})
}
