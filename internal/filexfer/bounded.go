package filexfer

// fifoMap is a map with a size limit that evicts the entry put longest ago.
// The trackers use it for requests awaiting a response and for open
// handles: a client may open handles it never closes or send requests the
// target never answers, and neither may grow memory without bound.
type fifoMap[K comparable, V any] struct {
	max   int
	m     map[K]fifoEntry[V]
	queue []fifoKey[K] // keys in put order; stale items are skipped and compacted away
	seq   uint64
}

type fifoEntry[V any] struct {
	v   V
	seq uint64
}

type fifoKey[K comparable] struct {
	k   K
	seq uint64
}

func newFIFOMap[K comparable, V any](max int) *fifoMap[K, V] {
	return &fifoMap[K, V]{max: max, m: make(map[K]fifoEntry[V])}
}

func (f *fifoMap[K, V]) len() int { return len(f.m) }

// put adds or replaces k. It returns what was displaced: the old value of k,
// or the oldest entry when the map is full.
func (f *fifoMap[K, V]) put(k K, v V) (displaced V, ok bool) {
	if old, found := f.m[k]; found {
		displaced, ok = old.v, true
	} else if len(f.m) >= f.max {
		displaced, ok = f.popOldest()
	}
	f.seq++
	f.m[k] = fifoEntry[V]{v, f.seq}
	f.queue = append(f.queue, fifoKey[K]{k, f.seq})
	if len(f.queue) > 2*f.max+16 {
		f.compact()
	}
	return displaced, ok
}

// take removes k and returns its value.
func (f *fifoMap[K, V]) take(k K) (V, bool) {
	e, ok := f.m[k]
	if ok {
		delete(f.m, k)
	}
	return e.v, ok
}

// get returns k's value, leaving it in place.
func (f *fifoMap[K, V]) get(k K) (V, bool) {
	e, ok := f.m[k]
	return e.v, ok
}

func (f *fifoMap[K, V]) popOldest() (V, bool) {
	for len(f.queue) > 0 {
		q := f.queue[0]
		f.queue = f.queue[1:]
		if e, ok := f.m[q.k]; ok && e.seq == q.seq {
			delete(f.m, q.k)
			return e.v, true
		}
	}
	var zero V
	return zero, false
}

// compact drops queue items whose entry was taken or replaced, so the
// queue stays proportional to the map.
func (f *fifoMap[K, V]) compact() {
	live := make([]fifoKey[K], 0, len(f.m))
	for _, q := range f.queue {
		if e, ok := f.m[q.k]; ok && e.seq == q.seq {
			live = append(live, q)
		}
	}
	f.queue = live
}

// drain removes every entry and returns the values in put order.
func (f *fifoMap[K, V]) drain() []V {
	var out []V
	for len(f.m) > 0 {
		v, ok := f.popOldest()
		if !ok {
			break
		}
		out = append(out, v)
	}
	f.queue = nil
	return out
}
