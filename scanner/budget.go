package scanner

import (
	"time"

	"github.com/avstation/avstation/scanner/archive"
)

// newBudget is one message's budget: the bytes and members with content
// of all its archives and encoded files (archive.Budget counts them as
// they are read), and the engines' time, which spend books.
func newBudget(opt Options) *archive.Budget {
	return archive.NewBudget(opt.MaxExpanded).LimitMembers(opt.MaxMembers)
}

// spend books d of engine time to the message. Past MaxEngineTime the
// budget is spent: archives stop expanding (the one being walked after
// its current member) and say max_engine_time, while the MIME parts and
// the raw message still go to the engines, so that a bomb of many cheap
// members cannot hold a job slot for long and nothing is left unscanned
// in silence.
func (s *Scanner) spend(st *scanState, d time.Duration) {
	st.engine += d
	if st.engine > s.opt.MaxEngineTime {
		st.budget.Stop(&archive.ErrLimit{Limit: "max_engine_time", Value: int64(s.opt.MaxEngineTime),
			Shown: s.opt.MaxEngineTime.String(), Message: true})
	}
}
