package server

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"sync"

	"ensemble/internal/config"
	"ensemble/internal/types"

	"go.etcd.io/etcd/api/v3/membershippb"
)

// Member is one member of the cluster as the other members know it.
type Member struct {
	ID         types.MemberID `json:"id"`
	Name       string         `json:"name"`
	PeerURLs   []string       `json:"peerURLs"`
	ClientURLs []string       `json:"clientURLs,omitempty"`
	IsLearner  bool           `json:"isLearner,omitempty"`
}

// clusterInfo is what a member records about itself and its cluster when it
// is created: the WAL's metadata and the data of every raft snapshot.
type clusterInfo struct {
	MemberID  types.MemberID   `json:"memberID"`
	ClusterID types.ClusterID  `json:"clusterID"`
	Members   []Member         `json:"members"`
	Removed   []types.MemberID `json:"removed,omitempty"`
}

// memberID derives a member's id from its peer URLs and the cluster token,
// so that every member computes the same ids from the same --initial-cluster.
func memberID(peerURLs []string, token string) types.MemberID {
	urls := append([]string(nil), peerURLs...)
	sort.Strings(urls)
	sum := sha256.Sum256([]byte(strings.Join(urls, ",") + "\x00" + token))
	return types.MemberID(binary.BigEndian.Uint64(sum[:8]))
}

func clusterID(ids []types.MemberID) types.ClusterID {
	sorted := append([]types.MemberID(nil), ids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	h := sha256.New()
	var b [8]byte
	for _, id := range sorted {
		binary.BigEndian.PutUint64(b[:], uint64(id))
		h.Write(b[:])
	}
	return types.ClusterID(binary.BigEndian.Uint64(h.Sum(nil)[:8]))
}

func urlStrings(us []url.URL) []string {
	out := make([]string, len(us))
	for i := range us {
		out[i] = us[i].String()
	}
	return out
}

// initialCluster computes the cluster described by the configuration.
func initialCluster(cfg *config.Config) clusterInfo {
	var info clusterInfo
	ids := make([]types.MemberID, 0, len(cfg.InitialCluster))
	for _, m := range cfg.InitialCluster {
		peers := urlStrings(m.PeerURLs)
		id := memberID(peers, cfg.InitialClusterToken)
		mem := Member{ID: id, Name: m.Name, PeerURLs: peers}
		if m.Name == cfg.Name {
			info.MemberID = id
			mem.ClientURLs = urlStrings(cfg.AdvertiseClientURLs)
		}
		info.Members = append(info.Members, mem)
		ids = append(ids, id)
	}
	info.ClusterID = clusterID(ids)
	return info
}

// membership is the live member list.
type membership struct {
	mu      sync.RWMutex
	members map[types.MemberID]*Member
	removed map[types.MemberID]bool
}

func newMembership(ms []Member) *membership {
	m := &membership{members: make(map[types.MemberID]*Member, len(ms)), removed: map[types.MemberID]bool{}}
	for i := range ms {
		mem := ms[i]
		m.members[mem.ID] = &mem
	}
	return m
}

func (m *membership) list() []Member {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Member, 0, len(m.members))
	for _, mem := range m.members {
		c := *mem
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func (m *membership) get(id types.MemberID) (Member, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	mem, ok := m.members[id]
	if !ok {
		return Member{}, false
	}
	return *mem, true
}

func (m *membership) setAttributes(id types.MemberID, name string, clientURLs []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	mem, ok := m.members[id]
	if !ok {
		return
	}
	if name != "" {
		mem.Name = name
	}
	mem.ClientURLs = append([]string(nil), clientURLs...)
}

// add records a member, or updates it when it is known already (a replayed
// entry, or a learner's promotion).
func (m *membership) add(mem Member) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.members[mem.ID]; ok {
		old.IsLearner = mem.IsLearner
		if len(mem.PeerURLs) > 0 {
			old.PeerURLs = append([]string(nil), mem.PeerURLs...)
		}
		if mem.Name != "" {
			old.Name = mem.Name
		}
		if len(mem.ClientURLs) > 0 {
			old.ClientURLs = append([]string(nil), mem.ClientURLs...)
		}
		return
	}
	c := mem
	m.members[mem.ID] = &c
}

func (m *membership) remove(id types.MemberID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, id)
	m.removed[id] = true
}

func (m *membership) setRemoved(ids []types.MemberID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range ids {
		m.removed[id] = true
		delete(m.members, id)
	}
}

func (m *membership) setPeerURLs(id types.MemberID, urls []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if mem, ok := m.members[id]; ok && len(urls) > 0 {
		mem.PeerURLs = append([]string(nil), urls...)
	}
}

// setAttributesFrom applies a ClusterMemberAttrSet request from the log.
func (m *membership) setAttributesFrom(a *membershippb.ClusterMemberAttrSetRequest) {
	if a.MemberAttributes == nil {
		return
	}
	m.setAttributes(types.MemberID(a.Member_ID), a.MemberAttributes.Name, a.MemberAttributes.ClientUrls)
}

func (m *membership) encode(self types.MemberID, cid types.ClusterID) []byte {
	m.mu.RLock()
	removed := make([]types.MemberID, 0, len(m.removed))
	for id := range m.removed {
		removed = append(removed, id)
	}
	m.mu.RUnlock()
	sort.Slice(removed, func(i, j int) bool { return removed[i] < removed[j] })
	b, _ := json.Marshal(clusterInfo{MemberID: self, ClusterID: cid, Members: m.list(), Removed: removed})
	return b
}
