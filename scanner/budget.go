package scanner

import (
	"time"

	"github.com/avstation/avstation/scanner/archive"
)

// ratioFloor is the least a message's archives may expand to together
// whatever its size: max_ratio times the size of a small message would
// be less than ordinary attachments need.
const ratioFloor = 64 << 20

// newBudget is the budget of a message of size bytes: the bytes and
// members with content of all its archives and encoded files
// (archive.Budget counts them as they are read), and the engines' time,
// which spend books. The bytes are max_expanded_bytes, and at most
// max_ratio times the message's size (at least ratioFloor): each archive
// member keeps within max_ratio, but nested archives multiply it, and a
// bomb of a few kilobytes must not cost what a large message may.
func newBudget(opt Options, size int64) *archive.Budget {
	return archive.NewBudget(opt.MaxExpanded).LimitRatio(opt.MaxRatio, size, ratioFloor).LimitMembers(opt.MaxMembers)
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
