package engine // import "github.com/b2b-otel/b2b-otel/collector/connector/b2bderive/internal/engine"

// The groups of one window rule and the memory of its evicted groups: the Go twin of _Groups and
// _Ghosts in b2b_otel/rules/engine.py. The caller holds the engine's lock.

import (
	"container/heap"
	"hash/maphash"
	"math/bits"
)

// entry is a window's place in a doubly linked list (recency, or its score's bucket).
type entry struct {
	w          *window
	prev, next *entry
}

// ring is an insertion-ordered list of windows: front is the oldest.
type ring struct{ head, tail *entry }

func (r *ring) pushBack(w *window) *entry {
	e := &entry{w: w, prev: r.tail}
	if r.tail != nil {
		r.tail.next = e
	} else {
		r.head = e
	}
	r.tail = e
	return e
}

func (r *ring) remove(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		r.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		r.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (r *ring) moveToBack(e *entry) {
	if r.tail == e {
		return
	}
	w := e.w
	r.remove(e)
	*e = entry{w: w, prev: r.tail}
	r.tail.next = e
	r.tail = e
}

// scoreHeap is a min-heap of the scores that have (or had: stale entries are skipped) a bucket.
type scoreHeap []int64

func (h scoreHeap) Len() int           { return len(h) }
func (h scoreHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h scoreHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *scoreHeap) Push(x any)        { *h = append(*h, x.(int64)) }
func (h *scoreHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// groups: when the rule is full, the least suspicious group goes first. Suspicion is the hits in the
// window when last seen (matching spans for a count rule, failures for a ratio rule). Evicted first:
// the least recently seen group if its window ran out, else one with the lowest score, the least
// recently seen among equals. O(log n) per update.
type groups struct {
	windows map[string]*window
	recent  ring
	byScore map[int64]*ring
	scores  scoreHeap
}

func newGroups() *groups {
	return &groups{windows: map[string]*window{}, byScore: map[int64]*ring{}}
}

// add a new group; seen must follow before the next eviction, and places it by score.
func (g *groups) add(w *window) {
	g.windows[w.key] = w
	w.recent = g.recent.pushBack(w)
	w.score = -1
}

func (g *groups) seen(w *window, score int64) {
	if w.score < 0 {
		w.score = score
		w.ranked = g.place(w, score)
		return
	}
	g.recent.moveToBack(w.recent)
	if score == w.score {
		g.byScore[score].moveToBack(w.ranked)
		return
	}
	g.unplace(w)
	w.score = score
	w.ranked = g.place(w, score)
}

// evict removes and returns the least suspicious window; bucket is the rule's current bucket.
func (g *groups) evict(bucket int64) *window {
	w := g.recent.head.w
	if w.epoch > bucket-bucketsPerWindow {
		for {
			if r, ok := g.byScore[g.scores[0]]; ok && r.head != nil {
				w = r.head.w
				break
			}
			heap.Pop(&g.scores)
		}
	}
	delete(g.windows, w.key)
	g.recent.remove(w.recent)
	g.unplace(w)
	return w
}

func (g *groups) place(w *window, score int64) *entry {
	r, ok := g.byScore[score]
	if !ok {
		r = &ring{}
		g.byScore[score] = r
		heap.Push(&g.scores, score)
		if len(g.scores) > 2*len(g.byScore)+64 { // drop the stale entries
			g.scores = g.scores[:0]
			for s := range g.byScore {
				g.scores = append(g.scores, s)
			}
			heap.Init(&g.scores)
		}
	}
	return r.pushBack(w)
}

func (g *groups) unplace(w *window) {
	r := g.byScore[w.score]
	r.remove(w.ranked)
	if r.head == nil {
		delete(g.byScore, w.score)
	}
}

const (
	ghostRows          = 4
	ghostSlotsPerGroup = 64
	ghostMaxWidth      = 1 << 21
)

// ghosts remembers what evicted groups had counted, approximately, in fixed memory: a count-min
// sketch with conservative update, in two generations of half a window each. The hash is seeded per
// engine, so collisions cannot be aimed.
type ghosts struct {
	width       uint64
	seed        maphash.Seed
	generations [2][]uint8
	generation  int64
}

func newGhosts(maxGroups int) *ghosts {
	width := uint64(1) << max(10, bits.Len64(uint64(max(1, maxGroups)*ghostSlotsPerGroup-1)))
	width = min(width, ghostMaxWidth)
	g := &ghosts{width: width, seed: maphash.MakeSeed()}
	g.generations[0] = make([]uint8, ghostRows*width)
	g.generations[1] = make([]uint8, ghostRows*width)
	return g
}

func (g *ghosts) slots(key string) [ghostRows]uint64 {
	h := maphash.String(g.seed, key)
	step := (h >> 32) | 1
	mask := g.width - 1
	var out [ghostRows]uint64
	for row := uint64(0); row < ghostRows; row++ {
		out[row] = row*g.width + ((h + row*step) & mask)
	}
	return out
}

func (g *ghosts) turn(bucket int64) {
	generation := pyFloorDivInt(bucket, bucketsPerWindow/2)
	if generation == g.generation {
		return
	}
	if generation-g.generation >= 2 {
		g.generations[0] = make([]uint8, ghostRows*g.width)
	} else {
		g.generations[0] = g.generations[1]
	}
	g.generations[1] = make([]uint8, ghostRows*g.width)
	g.generation = generation
}

func (g *ghosts) add(key string, count int64, bucket int64) {
	if count <= 0 {
		return
	}
	g.turn(bucket)
	current := g.generations[1]
	slots := g.slots(key)
	least := int64(255)
	for _, s := range slots {
		least = min(least, int64(current[s]))
	}
	target := uint8(min(255, least+count))
	for _, s := range slots {
		if current[s] < target {
			current[s] = target
		}
	}
}

func (g *ghosts) estimate(key string, bucket int64) int64 {
	g.turn(bucket)
	old, current := g.generations[0], g.generations[1]
	least := int64(math32)
	for _, s := range g.slots(key) {
		least = min(least, int64(old[s])+int64(current[s]))
	}
	return least
}

const math32 = 1 << 31

// pyFloorDivInt is Python's integer floor division.
func pyFloorDivInt(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
