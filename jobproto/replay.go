package jobproto

import (
	"crypto/sha256"
	"sync"
	"time"
)

// DefaultReplayCap bounds the replay cache: about 48 MB at most, reached
// only at some 1700 signed requests a second for ten minutes.
const DefaultReplayCap = 1 << 20

// ReplayCache remembers the nonces of authenticated requests for twice the
// timestamp window: a request whose nonce has expired from the cache has a
// timestamp outside the window and is refused for that. Memory is bounded;
// when full the cache refuses new nonces (treats them as replays) rather
// than forget one that may still be replayed.
type ReplayCache struct {
	ttl   time.Duration
	clock func() time.Time
	max   int

	mu    sync.Mutex
	seen  map[[16]byte]int64 // nonce key → expiry, unix nanoseconds
	order []replayEntry      // insertion order, which is expiry order
	head  int                // first live entry of order
}

type replayEntry struct {
	key    [16]byte
	expiry int64
}

// NewReplayCache returns a cache for requests whose timestamps are checked
// against window. clock nil is time.Now.
func NewReplayCache(window time.Duration, clock func() time.Time) *ReplayCache {
	if clock == nil {
		clock = time.Now
	}
	return &ReplayCache{
		ttl:   2 * window,
		clock: clock,
		max:   DefaultReplayCap,
		seen:  make(map[[16]byte]int64),
	}
}

// Seen records nonce and reports whether it was seen before. It also
// reports true when the cache is full.
func (c *ReplayCache) Seen(nonce string) bool {
	// Keys are a hash prefix: fixed size whatever the nonce.
	sum := sha256.Sum256([]byte(nonce))
	var key [16]byte
	copy(key[:], sum[:])

	now := c.clock().UnixNano()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	if _, ok := c.seen[key]; ok {
		return true
	}
	if len(c.seen) >= c.max {
		return true
	}
	exp := now + int64(c.ttl)
	c.seen[key] = exp
	c.order = append(c.order, replayEntry{key, exp})
	return false
}

// Len is the number of nonces held, for a gauge.
func (c *ReplayCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// expire drops entries whose expiry is strictly before now: at exactly
// seen+2*window a timestamp of seen+window is still inside the window.
func (c *ReplayCache) expire(now int64) {
	for c.head < len(c.order) && c.order[c.head].expiry < now {
		e := c.order[c.head]
		if c.seen[e.key] == e.expiry {
			delete(c.seen, e.key)
		}
		c.order[c.head] = replayEntry{}
		c.head++
	}
	if c.head > 1024 && c.head > len(c.order)/2 {
		c.order = append(c.order[:0:0], c.order[c.head:]...)
		c.head = 0
	}
}
