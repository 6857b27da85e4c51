package jobproto

import (
	"sync"
	"testing"
	"time"
)

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func TestReplayCache(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewReplayCache(time.Minute, clk.Now)
	steps := []struct {
		advance time.Duration
		nonce   string
		want    bool
	}{
		{0, "n1", false},
		{0, "n1", true},
		{0, "n2", false},
		{time.Minute, "n1", true},
		{time.Minute, "n1", true}, // exactly 2*window: still held
		{time.Nanosecond, "n1", false},
		{0, "n2", false},
		{0, "n1", true},
	}
	for i, s := range steps {
		clk.Add(s.advance)
		if got := c.Seen(s.nonce); got != s.want {
			t.Errorf("step %d: Seen(%q) = %v, want %v", i, s.nonce, got, s.want)
		}
	}
	if c.Len() != 2 {
		t.Errorf("len %d", c.Len())
	}
}

func TestReplayCacheFull(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewReplayCache(time.Minute, clk.Now)
	c.max = 3
	for _, n := range []string{"a", "b", "c"} {
		if c.Seen(n) {
			t.Fatalf("%s seen", n)
		}
	}
	if !c.Seen("d") {
		t.Error("full cache took a new nonce")
	}
	clk.Add(2*time.Minute + 1)
	if c.Seen("d") {
		t.Error("cache still full after expiry")
	}
}

func TestReplayCacheCompacts(t *testing.T) {
	clk := &fakeClock{now: t0}
	c := NewReplayCache(time.Second, clk.Now)
	for i := range 10000 {
		c.Seen(string(rune(i)))
		clk.Add(time.Millisecond)
	}
	if c.Len() > 2001 || len(c.order)-c.head != c.Len() || cap(c.order) > 8192 {
		t.Errorf("len %d, order %d/%d head %d", c.Len(), len(c.order), cap(c.order), c.head)
	}
}
