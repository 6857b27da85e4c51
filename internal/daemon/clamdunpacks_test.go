package daemon

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/test/harness"
)

// syncBuffer is a log sink safe for the probe's goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestCheckClamdUnpacks: with real clamds, the scanner is told that clamd
// unpacks mail only when every clamd finds EICAR in a mail's base64 zip:
// not with ScanMail or ScanArchive off, and not for a clamd that never
// answers (it is asked again, and nothing is confirmed meanwhile).
func TestCheckClamdUnpacks(t *testing.T) {
	on := harness.StartClamd(t)
	noMail := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{"ScanMail": "no"}})
	noArchive := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{"ScanArchive": "no"}})
	down := fmt.Sprintf("tcp:127.0.0.1:%d", harness.FreePort(t))
	tests := []struct {
		name    string
		clamds  []string
		confirm []bool // the calls of confirm
		log     string
	}{
		{"defaults", []string{on.Addr}, []bool{true}, "clamd parses mail and opens archives"},
		{"ScanMail off", []string{on.Addr, noMail.Addr}, []bool{false}, "ScanMail or ScanArchive is off"},
		{"ScanArchive off", []string{noArchive.Addr}, []bool{false}, "ScanMail or ScanArchive is off"},
		{"no answer", []string{down}, nil, "no answer yet; trying again"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := config.DefaultScanner()
			cfg.Clamd, cfg.ClamdConnect = tt.clamds, time.Second
			var logs syncBuffer
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			var confirmed []bool
			done := make(chan struct{})
			go func() {
				defer close(done)
				CheckClamdUnpacks(ctx, cfg, slog.New(slog.NewTextHandler(&logs, nil)), func(b bool) { confirmed = append(confirmed, b) })
			}()
			if tt.log == "no answer yet; trying again" {
				for !strings.Contains(logs.String(), tt.log) && ctx.Err() == nil {
					time.Sleep(10 * time.Millisecond)
				}
				cancel()
			}
			<-done
			if !slices.Equal(confirmed, tt.confirm) {
				t.Errorf("confirm called with %v, want %v", confirmed, tt.confirm)
			}
			if !strings.Contains(logs.String(), tt.log) {
				t.Errorf("log %q, want %q in it", logs.String(), tt.log)
			}
		})
	}
}
