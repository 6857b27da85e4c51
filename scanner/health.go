package scanner

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/verdict"
)

// EngineState is one engine's answer to a health check, safe to show
// anyone: no address, path or engine reply in it.
type EngineState struct {
	Name             string `json:"name"`
	State            string `json:"state"` // "ok" or "down"
	Reason           string `json:"reason,omitempty"`
	Version          string `json:"version,omitempty"`
	SignatureVersion string `json:"signature_version,omitempty"`
}

// checkBudget bounds one engine's answer to a health check.
const checkBudget = 2 * time.Second

// Check asks every engine at once for its version, now (not from the
// version cache), each within checkBudget. An engine answers only with its
// signatures loaded: clamd does not listen before its database is loaded,
// and a command-line scanner's version command runs the scanner itself.
func (s *Scanner) Check(ctx context.Context) []EngineState {
	out := make([]EngineState, len(s.engines))
	var wg sync.WaitGroup
	for i, e := range s.engines {
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, checkBudget)
			defer cancel()
			v, err := panics.Call(func() (verdict.Engine, error) { return e.Version(ctx) })
			if err != nil {
				out[i] = EngineState{Name: e.Name(), State: "down", Reason: failureKind(err)}
				return
			}
			out[i] = EngineState{Name: e.Name(), State: "ok", Version: v.Version, SignatureVersion: v.SignatureVersion}
		})
	}
	wg.Wait()
	return out
}

// failureKind names an engine failure without its details, which may
// hold addresses or paths.
func failureKind(err error) string {
	switch {
	case errors.Is(err, engineerr.ErrTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, engineerr.ErrUnreachable):
		return "unreachable"
	case errors.Is(err, engineerr.ErrProtocol):
		return "protocol"
	}
	if _, ok := errors.AsType[*panics.Error](err); ok {
		return "panic"
	}
	return "error"
}
