package zktree

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"

	"ensemble/internal/api/zk/jute"
)

// ACL schemes. "super" is not an ACL scheme but an identity: the front end
// gives it to a session that authenticated as the configured super user, as
// ZooKeeper's DigestAuthenticationProvider does, and it passes every check.
// No client can claim it by itself: it is never a stored ACL's scheme
// (fixACL refuses it) and only the front end builds Command.Auth.
const (
	schemeWorld  = "world"
	schemeAuth   = "auth"
	schemeDigest = "digest"
	schemeIP     = "ip"
	schemeSuper  = "super"
	idAnyone     = "anyone"
)

// An encoded ACL list is a uvarint count, then per entry the permission bits
// as a uvarint and the scheme and id, each a uvarint length and the bytes.
// Checks walk it in place, without decoding it into jute.ACLs.

// openACL is the encoding of ZooDefs.Ids.OPEN_ACL_UNSAFE, the ACL of nearly
// every node; it is shared, never written to.
var openACL = appendACL(appendUvarint(nil, 1), jute.PermAll, schemeWorld, idAnyone)

// readACL is the encoding of ZooDefs.Ids.READ_ACL_UNSAFE.
var readACL = appendACL(appendUvarint(nil, 1), jute.PermRead, schemeWorld, idAnyone)

func appendUvarint(dst []byte, x uint64) []byte { return binary.AppendUvarint(dst, x) }

func appendACL(dst []byte, perms jute.Perm, scheme, id string) []byte {
	dst = appendUvarint(dst, uint64(uint32(perms)))
	dst = appendUvarint(dst, uint64(len(scheme)))
	dst = append(dst, scheme...)
	dst = appendUvarint(dst, uint64(len(id)))
	return append(dst, id...)
}

// aclIter walks an encoded ACL list. A malformed list ends the walk early
// and sets bad.
type aclIter struct {
	b   []byte
	n   uint64
	bad bool
}

func newACLIter(b []byte) aclIter {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return aclIter{bad: len(b) > 0}
	}
	return aclIter{b: b[k:], n: n}
}

func (it *aclIter) next() (perms jute.Perm, scheme, id []byte, ok bool) {
	if it.n == 0 || it.bad {
		return 0, nil, nil, false
	}
	it.n--
	p, k := binary.Uvarint(it.b)
	if k <= 0 {
		it.bad = true
		return 0, nil, nil, false
	}
	it.b = it.b[k:]
	if scheme, ok = it.bytes(); !ok {
		return 0, nil, nil, false
	}
	if id, ok = it.bytes(); !ok {
		return 0, nil, nil, false
	}
	return jute.Perm(uint32(p)), scheme, id, true
}

func (it *aclIter) bytes() ([]byte, bool) {
	l, k := binary.Uvarint(it.b)
	if k <= 0 || l > uint64(len(it.b)-k) {
		it.bad = true
		return nil, false
	}
	s := it.b[k : k+int(l)]
	it.b = it.b[k+int(l):]
	return s, true
}

// decodeACL turns an encoded list into jute ACLs.
func decodeACL(b []byte) ([]jute.ACL, error) {
	it := newACLIter(b)
	// The count is bounded by the bytes: each entry takes at least three.
	acl := make([]jute.ACL, 0, min(it.n, uint64(len(b)/3)))
	for {
		perms, scheme, id, ok := it.next()
		if !ok {
			break
		}
		acl = append(acl, jute.ACL{Perms: perms, ID: jute.Id{Scheme: string(scheme), ID: string(id)}})
	}
	if it.bad {
		return nil, ErrCorrupt
	}
	return acl, nil
}

// allowedRaw is Allowed on an encoded ACL list.
func allowedRaw(acl []byte, perm jute.Perm, ids []jute.Id) bool {
	if isSuper(ids) {
		return true
	}
	it := newACLIter(acl)
	if it.n == 0 && !it.bad {
		// ZooKeeper lets anyone do anything to a node without ACL entries.
		return true
	}
	for {
		perms, scheme, id, ok := it.next()
		if !ok {
			return false
		}
		if perms&perm != 0 && matches(scheme, id, ids) {
			return true
		}
	}
}

// Allowed reports whether ids may do perm on a node with acl, as
// ZooKeeperServer.checkACL decides: an empty ACL allows everything; an entry
// allows if it grants perm and its id is world:anyone, or equals one of ids
// of the same scheme (digest and other schemes), or, for the ip scheme,
// covers the address of an "ip" id. An id of scheme "super" is allowed
// everything; only the front end grants that identity, to a session that
// proved to be the configured super user (there is none by default).
func Allowed(acl []jute.ACL, perm jute.Perm, ids []jute.Id) bool {
	if len(acl) == 0 || isSuper(ids) {
		return true
	}
	for i := range acl {
		a := &acl[i]
		if a.Perms&perm != 0 && matches(a.ID.Scheme, a.ID.ID, ids) {
			return true
		}
	}
	return false
}

func isSuper(ids []jute.Id) bool {
	for i := range ids {
		if ids[i].Scheme == schemeSuper {
			return true
		}
	}
	return false
}

// matches reports whether an ACL entry's id (scheme, id) names one of ids.
func matches[S string | []byte](scheme, id S, ids []jute.Id) bool {
	if string(scheme) == schemeWorld {
		return string(id) == idAnyone
	}
	for i := range ids {
		a := &ids[i]
		if a.Scheme != string(scheme) {
			continue
		}
		if string(scheme) == schemeIP {
			if ipMatches(a.ID, string(id)) {
				return true
			}
		} else if a.ID == string(id) {
			return true
		}
	}
	return false
}

// DigestID turns "user:password" into the digest scheme's id,
// "user:base64(sha1(user:password))", as DigestAuthenticationProvider's
// generateDigest does.
func DigestID(userPassword string) string {
	user, _, _ := strings.Cut(userPassword, ":")
	sum := sha1.Sum([]byte(userPassword))
	return user + ":" + base64.StdEncoding.EncodeToString(sum[:])
}

// fixACL checks a create's or setACL's ACL and encodes it, as ZooKeeper's
// fixupACL does: duplicates are dropped; the list must not be empty; world
// takes only "anyone"; "auth" stands for every authenticated identity of
// the session (not its ip or world ids) and needs at least one; digest ids
// must be "user:hash" and ip ids an address with an optional prefix length.
// Any other scheme is invalid.
func fixACL(acl []jute.ACL, auth []jute.Id) ([]byte, jute.Code) {
	if len(acl) == 1 && acl[0].Perms == jute.PermAll && acl[0].ID.Scheme == schemeWorld && acl[0].ID.ID == idAnyone {
		return openACL, jute.CodeOK
	}
	if len(acl) == 0 {
		return nil, jute.CodeInvalidACL
	}
	var body []byte
	count := 0
	for i := range acl {
		a := &acl[i]
		if dupBefore(acl, i) {
			continue
		}
		switch a.ID.Scheme {
		case schemeWorld:
			if a.ID.ID != idAnyone {
				return nil, jute.CodeInvalidACL
			}
		case schemeAuth:
			valid := false
			for _, id := range auth {
				if id.Scheme == schemeIP || id.Scheme == schemeWorld || id.Scheme == schemeSuper || id.Scheme == "" {
					continue
				}
				valid = true
				body = appendACL(body, a.Perms, id.Scheme, id.ID)
				count++
			}
			if !valid {
				return nil, jute.CodeInvalidACL
			}
			continue
		case schemeDigest:
			if !validDigestID(a.ID.ID) {
				return nil, jute.CodeInvalidACL
			}
		case schemeIP:
			if !validIPACL(a.ID.ID) {
				return nil, jute.CodeInvalidACL
			}
		default:
			return nil, jute.CodeInvalidACL
		}
		body = appendACL(body, a.Perms, a.ID.Scheme, a.ID.ID)
		count++
	}
	out := make([]byte, 0, uvarintLen(uint64(count))+len(body))
	out = appendUvarint(out, uint64(count))
	return append(out, body...), jute.CodeOK
}

func dupBefore(acl []jute.ACL, i int) bool {
	for j := range i {
		if acl[j] == acl[i] {
			return true
		}
	}
	return false
}

// validDigestID mirrors DigestAuthenticationProvider.isValid: Java's
// id.split(":") must give two parts, and split drops trailing empty parts.
func validDigestID(id string) bool {
	id = strings.TrimRight(id, ":")
	return strings.Count(id, ":") == 1
}

// validIPACL mirrors IPAuthenticationProvider.isValid: an address, and
// optionally "/bits" within the address's length.
func validIPACL(expr string) bool {
	addr, bitsStr, hasBits := strings.Cut(expr, "/")
	a, ok := ipBytes(addr)
	if !ok {
		return false
	}
	if hasBits {
		bits, err := strconv.Atoi(bitsStr)
		if err != nil || bits < 0 || bits > len(a)*8 {
			return false
		}
	}
	return true
}

// ipMatches reports whether client address addr is covered by the ip ACL
// expression expr ("address" or "address/bits").
func ipMatches(addr, expr string) bool {
	aclAddr, bitsStr, hasBits := strings.Cut(expr, "/")
	want, ok := ipBytes(aclAddr)
	if !ok {
		return false
	}
	bits := len(want) * 8
	if hasBits {
		b, err := strconv.Atoi(bitsStr)
		if err != nil || b < 0 || b > bits {
			return false
		}
		bits = b
	}
	got, ok := ipBytes(addr)
	if !ok || len(got) != len(want) {
		return false
	}
	for i := range want {
		m := byte(0xff)
		switch {
		case bits >= 8:
			bits -= 8
		case bits > 0:
			m = ^byte(0xff >> bits)
			bits = 0
		default:
			m = 0
		}
		if want[i]&m != got[i]&m {
			return false
		}
	}
	return true
}

// ipBytes parses an IPv4 address as Java's IPAuthenticationProvider does
// (four decimal parts, each 0..255) or, if it has a ':', an IPv6 address.
// An IPv4-mapped IPv6 address is IPv4, as Java's InetAddress makes it.
func ipBytes(s string) ([]byte, bool) {
	if strings.Contains(s, ":") {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, false
		}
		if a.Is4In6() {
			b := a.Unmap().As4()
			return b[:], true
		}
		b := a.As16()
		return b[:], true
	}
	var b [4]byte
	for i := range 4 {
		part, rest, found := strings.Cut(s, ".")
		if found != (i < 3) {
			return nil, false
		}
		v, err := strconv.Atoi(part)
		if err != nil || v < 0 || v > 255 {
			return nil, false
		}
		b[i] = byte(v)
		s = rest
	}
	return b[:], true
}
