package jobproto

import "github.com/avstation/avstation/verdict"

// Info is what GET /v1/info returns: what LISTSERV's SHOW VERSION and
// X-AV STATS give.
type Info struct {
	Station string           `json:"station"` // host name
	Version string           `json:"version"` // avstation version
	Engines []verdict.Engine `json:"engines,omitempty"`
	// MaxMessageSize is the largest job body the station accepts (its
	// max_message_size), so that a milter can send larger mail to its
	// oversize rule instead of to a 413 on every retry; 0: not said.
	MaxMessageSize int64            `json:"max_message_size,omitempty"`
	Counters       map[string]int64 `json:"counters,omitempty"`
}

// errorBody is the body of every response that is not a verdict or info.
type errorBody struct {
	Error string `json:"error"`
}
