package scanner

import (
	"container/list"
	"context"
	"sync"
	"sync/atomic"

	"github.com/avstation/avstation/verdict"
)

// lru is a bounded map whose least recently used entries go first. The
// scanner keeps two: whole verdicts by the SHA-256 of the message, and each
// engine's answer by the SHA-256 of a part or member. Both keys hold the
// engines' signature versions, so nothing is reused across a database
// update (a false positive cleared by an update clears at once). The part
// cache is what makes an MTA's retry cheap: the retried message has a new
// Received header and so a new hash, but the same attachments.
type lru[V any] struct {
	mu      sync.Mutex
	max     int
	entries map[string]*list.Element
	order   *list.List // front: most recently used

	hits, misses atomic.Int64
}

type lruEntry[V any] struct {
	key string
	v   V
}

func newLRU[V any](max int) *lru[V] {
	if max <= 0 {
		return nil
	}
	return &lru[V]{max: max, entries: map[string]*list.Element{}, order: list.New()}
}

func (c *lru[V]) get(key string) (v V, ok bool) {
	if c == nil || key == "" {
		return v, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		c.misses.Add(1)
		return v, false
	}
	c.hits.Add(1)
	c.order.MoveToFront(el)
	return el.Value.(*lruEntry[V]).v, true
}

func (c *lru[V]) put(key string, v V) {
	if c == nil || key == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		el.Value.(*lruEntry[V]).v = v
		c.order.MoveToFront(el)
		return
	}
	c.entries[key] = c.order.PushFront(&lruEntry[V]{key: key, v: v})
	for c.order.Len() > c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.entries, old.Value.(*lruEntry[V]).key)
	}
}

func (c *lru[V]) stats() (hits, misses int64) {
	if c == nil {
		return 0, 0
	}
	return c.hits.Load(), c.misses.Load()
}

// putVerdict keeps a copy of v; verdicts with an engine error are not kept,
// so that the next try asks the engines again.
func (s *Scanner) putVerdict(key string, v *verdict.Verdict) {
	if v.Status != verdict.Error && verdict.Known(v.Status) {
		s.verdicts.put(key, *v)
	}
}

// CacheStats reports hits and misses of the message verdict cache.
func (s *Scanner) CacheStats() (hits, misses int64) { return s.verdicts.stats() }

// PartCacheStats reports hits and misses of the per-part engine cache.
func (s *Scanner) PartCacheStats() (hits, misses int64) { return s.parts.stats() }

type digestKey struct{}

// WithDigest is ctx carrying the message's SHA-256 in lowercase hex, when
// the caller has it already (the station checked it against the job's
// signed digest): the verdict cache then uses it instead of reading and
// hashing the message again. A value that is not 64 lowercase hex digits
// is ignored.
func WithDigest(ctx context.Context, sha256hex string) context.Context {
	if !isSHA256Hex(sha256hex) {
		return ctx
	}
	return context.WithValue(ctx, digestKey{}, sha256hex)
}

func digestFrom(ctx context.Context) string {
	d, _ := ctx.Value(digestKey{}).(string)
	return d
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
