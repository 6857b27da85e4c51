package scanner

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/verdict"
)

// goroutineEngine does its work in a goroutine of its own, recovered into
// its error as clamd's watchdog and the external scanner's output readers
// do; the work panics on "PANIC".
type goroutineEngine struct{ fakeEngine }

func (e *goroutineEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Detection{}, err
	}
	errc := make(chan error, 1)
	go func() {
		errc <- panics.Do(func() error {
			if bytes.Contains(b, []byte("PANIC")) {
				panic("engine goroutine bug")
			}
			return nil
		})
	}()
	if err := <-errc; err != nil {
		return Detection{}, engineWrap(err)
	}
	return e.fakeEngine.Scan(ctx, bytes.NewReader(b))
}

// engineWrap wraps an error as engines do, with their context.
func engineWrap(err error) error { return errors.Join(errors.New("engine: scanning"), err) }

// versionPanicEngine panics when asked its version.
type versionPanicEngine struct{ fakeEngine }

func (e *versionPanicEngine) Version(context.Context) (verdict.Engine, error) {
	panic("version bug")
}

// TestEngineGoroutinePanic: a panic an engine recovered from a goroutine
// of its own fails the scan as a panic in the engine call would (a
// *PanicError, logged and counted by the caller), not as a plain engine
// error; the next scan is answered.
func TestEngineGoroutinePanic(t *testing.T) {
	sc := New(Options{Name: "test", SpoolDir: t.TempDir()}, &goroutineEngine{})
	raw := []byte(crlf(multipart(textPart, attachment("bug.bin", "PANIC"))))
	v, err := sc.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	pe, ok := errors.AsType[*PanicError](err)
	if v != nil || !ok || pe.Value != "engine goroutine bug" || !strings.Contains(string(pe.Stack), "goroutineEngine") {
		t.Fatalf("verdict %+v, err %v; want the goroutine's panic", v, err)
	}
	raw = []byte(crlf(multipart(textPart, attachment("x.exe", "EVIL"))))
	if v, err := sc.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw))); err != nil || v.Status != verdict.Infected {
		t.Fatalf("the next scan: %+v, %v", v, err)
	}
}

// TestVersionPanic: an engine whose Version panics (asked in goroutines of
// the scanner's own: the health check and the version refresh) is down to
// the health check with the reason "panic", and scans still work, with
// the engine's version unknown.
func TestVersionPanic(t *testing.T) {
	sc := New(Options{Name: "test", SpoolDir: t.TempDir()}, &versionPanicEngine{})
	states := sc.Check(context.Background())
	if len(states) != 1 || states[0].State != "down" || states[0].Reason != "panic" {
		t.Errorf("Check: %+v, want down for a panic", states)
	}
	raw := []byte(crlf(multipart(textPart, attachment("x.exe", "EVIL"))))
	v, err := sc.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	if err != nil || v.Status != verdict.Infected {
		t.Fatalf("scan: %+v, %v", v, err)
	}
	if len(v.Engines) != 1 || v.Engines[0].Name != "fake" || v.Engines[0].Version != "" {
		t.Errorf("engines %+v, want fake with no version", v.Engines)
	}
}
