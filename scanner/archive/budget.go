package archive

import (
	"strconv"
	"sync"
)

// Budget is what all archives of one message may cost together: the
// bytes they expand to (max_expanded_bytes, and max_ratio times the
// message's size: LimitRatio) and the members with content they hold, and
// whatever else the caller budgets (Stop). Once one runs out, every walk
// stops after the member it is reading and later walks open nothing. It
// is safe for concurrent use. A nil *Budget is no limit.
type Budget struct {
	mu         sync.Mutex
	max        int64
	maxErr     *ErrLimit // the limit max is: max_expanded_bytes, or max_ratio for the message
	used       int64
	maxMembers int
	members    int
	why        *ErrLimit // the first budget that ran out; nil while none has
}

// NewBudget returns a budget of maxExpanded bytes and no member limit;
// 0 or less is no limit.
func NewBudget(maxExpanded int64) *Budget {
	return &Budget{max: maxExpanded, maxErr: &ErrLimit{Limit: "max_expanded_bytes", Value: maxExpanded, Message: true}}
}

// LimitRatio lowers the bytes to ratio times the message's size, but not
// below floor: expansion compounds through nested archives, each of
// which keeps within max_ratio, and a small message must not cost what a
// large one may. Past it the limit is max_ratio for the message. It
// returns b.
func (b *Budget) LimitRatio(ratio float64, size, floor int64) *Budget {
	n := max(floor, int64(min(ratio*float64(size), 1<<62)))
	if ratio > 0 && (b.max <= 0 || n < b.max) {
		b.max = n
		b.maxErr = &ErrLimit{Limit: "max_ratio", Value: int64(ratio), Shown: strconv.FormatFloat(ratio, 'g', -1, 64), Message: true}
	}
	return b
}

// LimitMembers sets how many members with content (at least one byte
// read) the message's archives may hold together; 0 or less is no limit.
// Empty members, directories and links cost nothing. It returns b.
func (b *Budget) LimitMembers(n int) *Budget {
	b.maxMembers = n
	return b
}

// MaxMembers is the member limit, 0 when there is none.
func (b *Budget) MaxMembers() int {
	if b == nil {
		return 0
	}
	return b.maxMembers
}

// take books n bytes and returns how many of them fit.
func (b *Budget) take(n int64) (int64, bool) {
	if b == nil || b.max <= 0 {
		return n, true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	room := b.max - b.used
	if n <= room {
		b.used += n
		return n, true
	}
	b.used = b.max
	b.stop(b.bytesErr())
	return max(room, 0), false
}

// TakeMember books one member with content; when the message has had
// its max_members already, err is that limit and the budget is spent.
func (b *Budget) TakeMember() error {
	if b == nil || b.maxMembers <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.members >= b.maxMembers {
		err := &ErrLimit{Limit: "max_members", Value: int64(b.maxMembers), Message: true}
		b.stop(err)
		return err
	}
	b.members++
	return nil
}

// Members is how many members with content have been booked.
func (b *Budget) Members() int {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.members
}

// Stop spends the budget for a reason of the caller's (the engines' time
// for the message): walks stop as for the budget's own limits, and
// Exceeded's limit is why, unless another ran out first.
func (b *Budget) Stop(why *ErrLimit) {
	if b == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stop(why)
}

func (b *Budget) stop(why *ErrLimit) {
	if b.why == nil {
		b.why = why
	}
}

// Take books n bytes that were expanded outside an archive (a file
// decoded from the text of a message) and reports whether they fit; when
// they do not, err is the max_expanded_bytes limit.
func (b *Budget) Take(n int64) (fit int64, err error) {
	fit, ok := b.take(n)
	if !ok {
		return fit, b.bytesErr()
	}
	return fit, nil
}

// Used is how many expanded bytes have been read so far.
func (b *Budget) Used() int64 {
	if b == nil {
		return 0
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Exceeded reports whether the budget has run out.
func (b *Budget) Exceeded() bool {
	return b.Why() != nil
}

// Why is the limit that ran out first, nil while none has.
func (b *Budget) Why() *ErrLimit {
	if b == nil {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.why
}

func (b *Budget) bytesErr() *ErrLimit {
	return b.maxErr
}

// ErrLimit is a limit that was reached. Content readers return errors
// wrapping it; errors.As finds it.
type ErrLimit struct {
	Limit string // "max_ratio", "max_member_size", "max_expanded_bytes", "max_members", "max_engine_time"
	Value int64
	// Shown is Value as the setting is written ("1m0s"), when that is not
	// the plain number.
	Shown string
	// Message: a budget of the whole message, not of one member.
	Message bool
}

func (e *ErrLimit) Error() string {
	v := e.Shown
	if v == "" {
		v = strconv.FormatInt(e.Value, 10)
	}
	if e.Message {
		return e.Limit + " " + v + " for the message exceeded"
	}
	return e.Limit + " " + v + " exceeded"
}
