package scanner

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/avstation/avstation/verdict"
)

// cache remembers verdicts by the SHA-256 of the message and the signature
// versions of the engines that gave them, so that an MTA's retry after a
// tempfail or one posting sent to several lists is scanned once. A new
// signature version makes every older entry unreachable (it is part of the
// key), so a verdict is never reused across a database update: a false
// positive cleared by an update clears at once. Least recently used entries
// go first when it is full.
type cache struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element
	order   *list.List // front: most recently used

	hits, misses atomic.Int64
}

type cacheEntry struct {
	key string
	v   verdict.Verdict
}

func newCache(max int) *cache {
	if max <= 0 {
		return nil
	}
	return &cache{max: max, entries: map[string]*list.Element{}, order: list.New()}
}

// get returns a copy of the cached verdict for key.
func (c *cache) get(key string) (*verdict.Verdict, bool) {
	if c == nil {
		return nil, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		c.misses.Add(1)
		return nil, false
	}
	c.hits.Add(1)
	c.order.MoveToFront(el)
	v := el.Value.(*cacheEntry).v
	return &v, true
}

// put keeps a copy of v. Verdicts with an engine error are not kept: the
// next try should ask the engines again.
func (c *cache) put(key string, v *verdict.Verdict) {
	if c == nil || v.Status == verdict.Error || !verdict.Known(v.Status) {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value.(*cacheEntry).v = *v
		c.order.MoveToFront(el)
		return
	}
	c.entries[key] = c.order.PushFront(&cacheEntry{key: key, v: *v})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).key)
	}
}

// CacheStats reports verdict cache hits and misses since start.
func (s *Scanner) CacheStats() (hits, misses int64) {
	if s.cache == nil {
		return 0, 0
	}
	return s.cache.hits.Load(), s.cache.misses.Load()
}
