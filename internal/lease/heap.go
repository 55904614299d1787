package lease

// expiryHeap orders leases by when the leader must next look at them. It is
// indexed (each lease knows its position) so that a renewal moves its lease
// in O(log n) instead of adding an entry.
type expiryHeap []*lease

func (h expiryHeap) less(i, j int) bool { return h[i].at.Before(h[j].at) }

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].idx = i
	h[j].idx = j
}

func (h *expiryHeap) push(l *lease) {
	l.idx = len(*h)
	*h = append(*h, l)
	h.up(l.idx)
}

func (h *expiryHeap) remove(l *lease) {
	i := l.idx
	n := len(*h) - 1
	if i != n {
		h.swap(i, n)
	}
	(*h)[n] = nil
	*h = (*h)[:n]
	l.idx = -1
	if i != n {
		if !h.down(i) {
			h.up(i)
		}
	}
}

func (h expiryHeap) fix(l *lease) {
	if l.idx < 0 {
		return
	}
	if !h.down(l.idx) {
		h.up(l.idx)
	}
}

func (h expiryHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		j = i
	}
}

// down sifts element i down and reports whether it moved.
func (h expiryHeap) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		j := 2*i + 1
		if j >= n || j < 0 {
			break
		}
		if r := j + 1; r < n && h.less(r, j) {
			j = r
		}
		if !h.less(j, i) {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}
