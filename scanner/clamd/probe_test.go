package clamd

import (
	"archive/zip"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"
)

// depthOf opens z level by level and counts the zips.
func depthOf(t *testing.T, z []byte) (depth int, inner string) {
	t.Helper()
	for {
		r, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
		if err != nil {
			return depth, string(z)
		}
		if len(r.File) != 1 {
			t.Fatalf("level %d has %d members, want 1", depth, len(r.File))
		}
		f, err := r.File[0].Open()
		if err != nil {
			t.Fatal(err)
		}
		z, _ = io.ReadAll(f)
		depth++
	}
}

func TestLimitProbe(t *testing.T) {
	a, err := LimitProbe()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := LimitProbe()
	da, ia := depthOf(t, a)
	_, ib := depthOf(t, b)
	if da != ProbeDepth || da <= 17 {
		t.Errorf("depth %d, want %d, past clamd's default MaxRecursion 17", da, ProbeDepth)
	}
	if !strings.HasPrefix(ia, "avstation limits probe ") || ia == ib {
		t.Errorf("innermost %q and %q: want a probe text new each time (clamd caches clean files)", ia, ib)
	}
	if len(a) > 16<<10 {
		t.Errorf("probe is %d bytes, want a small one", len(a))
	}
}

type replyScanner struct {
	reply string
	err   error
	got   []byte
}

func (s *replyScanner) Scan(ctx context.Context, r io.Reader) (Result, error) {
	s.got, _ = io.ReadAll(r)
	if s.err != nil {
		return Result{}, s.err
	}
	return ParseScanReply(s.reply)
}

func TestProbeLimits(t *testing.T) {
	down := errors.New("connection refused")
	tests := []struct {
		name    string
		s       *replyScanner
		reports bool
		wantErr string
	}{
		{"AlertExceedsMax yes", &replyScanner{reply: "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND"}, true, ""},
		{"AlertExceedsMax off", &replyScanner{reply: "stream: OK"}, false, ""},
		{"a threat", &replyScanner{reply: "stream: Eicar-Test-Signature FOUND"}, false, "unexpected answer"},
		{"encrypted", &replyScanner{reply: "stream: Heuristics.Encrypted.Zip FOUND"}, false, "unexpected answer"},
		{"clamd down", &replyScanner{err: down}, false, "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reports, err := ProbeLimits(context.Background(), tt.s)
			if reports != tt.reports || (err == nil) != (tt.wantErr == "") || err != nil && !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ProbeLimits = %v, %v; want %v, %q", reports, err, tt.reports, tt.wantErr)
			}
			if d, _ := depthOf(t, tt.s.got); d != ProbeDepth {
				t.Errorf("clamd was sent a probe %d deep, want %d", d, ProbeDepth)
			}
		})
	}
}
