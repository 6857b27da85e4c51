package notice

import (
	"fmt"
	"sync"
	"time"
)

// Window is how long after it was marked a notice is let through. It comes
// back within seconds, while the milter still decides the message it is
// about; the margin covers a slow MTA.
const Window = 10 * time.Minute

// skew is how far in the future a mark's time may be: none is expected, as
// the same process marks and checks, but the wall clock may step.
const skew = time.Minute

// DefaultCapacity bounds the Message-IDs a Guard remembers. Only notices
// within Window count; more than this many at once is a flood, and a
// notice beyond it is scanned (ErrFull), never let through twice.
const DefaultCapacity = 100000

// Guard lets each genuine notice through once: Accept verifies the mark
// and remembers the Message-ID until the mark has expired. It is safe for
// concurrent use.
type Guard struct {
	key      *Key
	capacity int

	mu   sync.Mutex
	seen map[string]time.Time // Message-ID: when its mark expires
}

// NewGuard checks marks made with key.
func NewGuard(key *Key) *Guard {
	return &Guard{key: key, capacity: DefaultCapacity, seen: map[string]time.Time{}}
}

// Key is the key the guard checks with, to mark notices.
func (g *Guard) Key() *Key { return g.key }

// Accept verifies value for msg at now, and that this Message-ID was not
// accepted before. nil means the message may pass unscanned; any error
// means it is scanned like any other mail.
func (g *Guard) Accept(value string, msg Message, now time.Time) (Stamp, error) {
	st, err := g.key.Verify(value, msg)
	if err != nil {
		return Stamp{}, err
	}
	if age := now.Sub(st.Time); age > Window || -age > skew {
		return Stamp{}, fmt.Errorf("%w: marked at %s, now %s", ErrExpired, st.Time.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339))
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if _, ok := g.seen[st.MessageID]; ok {
		return Stamp{}, fmt.Errorf("%w: %s", ErrReplayed, st.MessageID)
	}
	if len(g.seen) >= g.capacity {
		g.prune(now)
		if len(g.seen) >= g.capacity {
			return Stamp{}, fmt.Errorf("%w: %d within %v", ErrFull, len(g.seen), Window)
		}
	}
	// Kept until no mark for it can verify any more: then the time check
	// refuses a replay on its own.
	g.seen[st.MessageID] = st.Time.Add(Window)
	if len(g.seen)%1024 == 0 {
		g.prune(now)
	}
	return st, nil
}

// prune forgets the Message-IDs whose marks have expired.
func (g *Guard) prune(now time.Time) {
	for id, until := range g.seen {
		if now.After(until) {
			delete(g.seen, id)
		}
	}
}
