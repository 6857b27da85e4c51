package milter

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/avstation/avstation/smtpreply"
)

// The replies for a message the milter cannot hold (RFC 3463 4.3.1, 4.3.4):
// the sender's MTA keeps it and retries.
var (
	replyNoStorage = smtpreply.Reply{Code: 451, Enhanced: "4.3.1", Text: "Insufficient system storage to check this message for viruses; please try again later."}
	replyTooBig    = smtpreply.Reply{Code: 451, Enhanced: "4.3.4", Text: "Message too big to be checked for viruses here; please try again later."}
)

// errOverBudget is a message that would take the held bytes past a limit.
var errOverBudget = errors.New("over the spool budget")

// budget bounds the bytes of list-bound messages held at once, memory and
// spool_dir together, so that a flood of large postings fills neither
// memory nor disk: past it, new bytes are refused and the MTA told 451.
type budget struct {
	max  int64 // 0: no bound
	held atomic.Int64
}

// take reserves n bytes, or reserves nothing and fails.
func (b *budget) take(n int64) error {
	if b.max <= 0 {
		return nil
	}
	if now := b.held.Add(n); now > b.max {
		b.held.Add(-n)
		return fmt.Errorf("%w: %d bytes held by all messages, at most %d (spool_max_total)", errOverBudget, now-n, b.max)
	}
	return nil
}

func (b *budget) give(n int64) {
	if b.max > 0 {
		b.held.Add(-n)
	}
}

// sessions counts the MTA connections open now, for max_sessions.
type sessions struct {
	max  int // 0: no bound
	open atomic.Int64
}

// enter counts one more connection and says whether it is within the
// bound; every enter is matched by a leave.
func (s *sessions) enter() bool {
	n := s.open.Add(1)
	return s.max <= 0 || n <= int64(s.max)
}

func (s *sessions) leave() { s.open.Add(-1) }
