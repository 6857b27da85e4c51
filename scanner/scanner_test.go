package scanner

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

// fakeEngine finds "EVIL" in a stream and counts what it was asked.
type fakeEngine struct {
	mu      sync.Mutex
	streams []string
	err     error
}

func (e *fakeEngine) Name() string { return "fake" }
func (e *fakeEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Detection{}, err
	}
	e.mu.Lock()
	e.streams = append(e.streams, string(b))
	e.mu.Unlock()
	if e.err != nil {
		return Detection{}, e.err
	}
	if bytes.Contains(b, []byte("EVIL")) {
		return Detection{Found: true, Threat: "Test.Evil", Raw: "stream: Test.Evil FOUND"}, nil
	}
	return Detection{}, nil
}
func (e *fakeEngine) Version(ctx context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "fake", Version: "1.0", SignatureVersion: "42"}, nil
}

func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func multipart(parts ...string) string {
	var b strings.Builder
	b.WriteString("From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\npreamble\n")
	for _, p := range parts {
		b.WriteString("--BB\n" + p + "\n")
	}
	b.WriteString("--BB--\n")
	return b.String()
}

func attachment(name, content string) string {
	return "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"" + name + "\"\nContent-Transfer-Encoding: base64\n\n" + b64(content)
}

const textPart = "Content-Type: text/plain\n\nhello list"

func scan(t *testing.T, opt Options, e Engine, msg string) *verdict.Verdict {
	t.Helper()
	raw := []byte(crlf(msg))
	if opt.Name == "" {
		opt.Name = "test"
	}
	v, err := New(opt, e).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	return v
}

func TestScanFindings(t *testing.T) {
	deep := func(n int, content string) string {
		msg := "Content-Type: text/plain\n\n" + content
		for i := 0; i < n; i++ {
			msg = fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"b%d\"\n\n--b%d\n%s\n--b%d--\n", i, i, msg, i)
		}
		return "Subject: deep\n" + msg
	}
	many := func(n int) string {
		var parts []string
		for i := 0; i < n; i++ {
			parts = append(parts, textPart)
		}
		return multipart(parts...)
	}
	tests := []struct {
		name   string
		opt    Options
		msg    string
		status verdict.Status
		// first finding of the status: path, file name, threat or detail substring
		path, file, detail string
		streams            int // engine calls: parts + raw
	}{
		{"plain clean", Options{}, "Subject: hi\n\nhello", verdict.Clean, "", "", "", 2},
		{"clean attachments", Options{}, multipart(textPart, attachment("a.pdf", "PDF")), verdict.Clean, "", "", "", 3},
		{"infected attachment named", Options{}, multipart(textPart, attachment("eicar.com", "EVIL")),
			verdict.Infected, "2", "eicar.com", "Test.Evil", 3},
		{"RFC 2231 file name", Options{}, multipart(textPart, "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.exe\nContent-Transfer-Encoding: base64\n\n"+b64("EVIL")),
			verdict.Infected, "2", "résumé.exe", "Test.Evil", 3},
		{"RFC 2047 name parameter", Options{}, multipart("Content-Type: application/octet-stream; name=\"=?UTF-8?B?w6lpY2FyLmNvbQ==?=\"\nContent-Transfer-Encoding: base64\n\n" + b64("EVIL")),
			verdict.Infected, "1", "éicar.com", "Test.Evil", 2},
		{"quoted-printable decoded", Options{}, multipart("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\nEV=\nIL"),
			verdict.Infected, "1", "", "Test.Evil", 2},
		{"base64 with garbage between lines", Options{}, multipart("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + b64("EVIL")[:4] + " \t!\n" + b64("EVIL")[4:]),
			verdict.Infected, "1", "", "Test.Evil", 2},
		{"attached message walked", Options{}, multipart(textPart, "Content-Type: message/rfc822\n\nSubject: inner\nContent-Type: multipart/mixed; boundary=in\n\n--in\n"+attachment("inner.exe", "EVIL")+"\n--in--\n"),
			verdict.Infected, "2/1", "inner.exe", "Test.Evil", 3},
		{"missing final boundary is unscannable, parts still scanned", Options{},
			"Content-Type: multipart/mixed; boundary=BB\n\n--BB\n" + textPart + "\n--BB\n" + attachment("a.txt", "fine"),
			verdict.Unscannable, "2", "a.txt", "ends without its closing boundary", 3},
		{"missing boundary infected still found", Options{},
			"Content-Type: multipart/mixed; boundary=BB\n\n--BB\n" + attachment("x.exe", "EVIL"),
			verdict.Infected, "1", "x.exe", "Test.Evil", 2},
		{"multipart without boundary", Options{}, "Content-Type: multipart/mixed\n\nEVIL",
			verdict.Infected, "1", "", "Test.Evil", 2},
		{"depth limit", Options{MaxDepth: 5}, deep(10, "fine"), verdict.LimitExceeded, "1/1/1/1/1", "", "max_depth 5", 1},
		{"depth within limit", Options{MaxDepth: 20}, deep(10, "EVIL"), verdict.Infected, "1/1/1/1/1/1/1/1/1/1", "", "Test.Evil", 2},
		{"part limit", Options{MaxParts: 10}, many(11), verdict.LimitExceeded, "11", "", "max_parts 10", 11},
		{"header limit", Options{MaxHeaderBytes: 100}, multipart("X-Long: " + strings.Repeat("a", 200) + "\n\nbody"),
			verdict.LimitExceeded, "1", "", "max_header_bytes 100", 1},
		{"garbage header line", Options{}, "Subject ok\n\x00\x01: x\n\nEVIL", verdict.Infected, "", "", "Test.Evil", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &fakeEngine{}
			v := scan(t, tt.opt, e, tt.msg)
			if v.Status != tt.status {
				t.Fatalf("status %q, want %q; findings %+v", v.Status, tt.status, v.Findings)
			}
			if len(e.streams) != tt.streams {
				t.Errorf("engine saw %d streams, want %d", len(e.streams), tt.streams)
			}
			if v.Scanner != "test" || len(v.Engines) != 1 || v.Engines[0].SignatureVersion != "42" {
				t.Errorf("scanner %q engines %+v", v.Scanner, v.Engines)
			}
			if tt.status == verdict.Clean {
				return
			}
			f, _ := v.First(tt.status)
			if f.Path != tt.path || f.FileName != tt.file || !strings.Contains(f.Threat+f.Detail, tt.detail) {
				t.Errorf("first finding %+v, want path %q file %q detail %q", f, tt.path, tt.file, tt.detail)
			}
		})
	}
}

func TestScanEngineFailures(t *testing.T) {
	msg := multipart(textPart)
	t.Run("engine error", func(t *testing.T) {
		v := scan(t, Options{}, &fakeEngine{err: errors.New("connection refused")}, msg)
		if f, ok := v.First(verdict.Error); v.Status != verdict.Error || !ok || !strings.Contains(f.Detail, "connection refused") {
			t.Errorf("status %q findings %+v", v.Status, v.Findings)
		}
	})
	t.Run("too large is a limit", func(t *testing.T) {
		v := scan(t, Options{}, &fakeEngine{err: ErrTooLarge}, msg)
		if v.Status != verdict.LimitExceeded {
			t.Errorf("status %q findings %+v", v.Status, v.Findings)
		}
	})
	t.Run("no engine", func(t *testing.T) {
		v, err := New(Options{}).Scan(context.Background(), strings.NewReader("x"), 1)
		if err != nil || v.Status != verdict.Error {
			t.Errorf("v %+v err %v", v, err)
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		raw := crlf(msg)
		if _, err := New(Options{Name: "test"}, &fakeEngine{}).Scan(ctx, strings.NewReader(raw), int64(len(raw))); err == nil {
			t.Error("no error for a cancelled scan")
		}
	})
}

func TestLargePartSpillsAndIsRemoved(t *testing.T) {
	dir := t.TempDir()
	big := strings.Repeat("x", 100<<10) + "EVIL"
	v := scan(t, Options{Name: "test", PartMemory: 1 << 10, SpoolDir: dir}, &fakeEngine{}, multipart(attachment("big.bin", big)))
	if v.Status != verdict.Infected || v.Manifest[0].Size != int64(len(big)) {
		t.Errorf("status %q manifest %+v", v.Status, v.Manifest)
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("spool files left: %v", left)
	}
}

func TestScanModes(t *testing.T) {
	msg := multipart("Content-Type: text/plain\n\nEVIL in the text", attachment("a.pdf", "clean pdf"))
	tests := []struct {
		mode    Mode
		streams []string // what the engine saw, in order
		status  verdict.Status
	}{
		{ModeAll, []string{"EVIL in the text", "clean pdf", "raw"}, verdict.Infected},
		{ModeAttachments, []string{"clean pdf"}, verdict.Clean},
		{ModeMessage, []string{"raw"}, verdict.Infected},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			e := &fakeEngine{}
			v := scan(t, Options{Mode: tt.mode}, e, msg)
			var saw []string
			for _, s := range e.streams {
				if strings.HasPrefix(s, "From: ") {
					s = "raw"
				}
				saw = append(saw, s)
			}
			if strings.Join(saw, "|") != strings.Join(tt.streams, "|") || v.Status != tt.status {
				t.Errorf("engine saw %q, status %q; want %q, %q", saw, v.Status, tt.streams, tt.status)
			}
			if len(v.Manifest) != 2 {
				t.Errorf("manifest %+v, want both parts whatever the mode", v.Manifest)
			}
		})
	}
}

func TestVerdictCache(t *testing.T) {
	e := &versionedEngine{fakeEngine: &fakeEngine{}, sig: "1"}
	s := New(Options{Name: "test", CacheEntries: 100}, e)
	raw := []byte(crlf(multipart(attachment("x.exe", "EVIL"))))
	scanOnce := func() *verdict.Verdict {
		v, err := s.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	first := scanOnce()
	n := len(e.streams)
	second := scanOnce()
	if first.Cached || !second.Cached || len(e.streams) != n || second.Status != verdict.Infected {
		t.Errorf("second scan: cached %v, engine calls %d→%d, status %q", second.Cached, n, len(e.streams), second.Status)
	}
	if hits, misses := s.CacheStats(); hits != 1 || misses != 1 {
		t.Errorf("hits %d misses %d", hits, misses)
	}
	// A new signature version means scanning again.
	e.sig = "2"
	refreshNow(s)
	if third := scanOnce(); third.Cached || len(e.streams) == n {
		t.Errorf("scan after a signature update was served from the cache")
	}
	// Engine errors are not cached.
	e.err = errors.New("down")
	raw = []byte(crlf(multipart(attachment("y.exe", "other"))))
	scanOnce()
	e.err = nil
	if v := scanOnce(); v.Cached || v.Status != verdict.Clean {
		t.Errorf("after an engine error: cached %v status %q", v.Cached, v.Status)
	}
}

type versionedEngine struct {
	*fakeEngine
	sig string
}

func (e *versionedEngine) Version(ctx context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "fake", Version: "1.0", SignatureVersion: e.sig}, nil
}

// TestPartCache: an MTA's retry carries a new Received header, so the
// message hash changes, but its attachment is not sent to the engine again.
func TestPartCache(t *testing.T) {
	e := &versionedEngine{fakeEngine: &fakeEngine{}, sig: "1"}
	s := New(Options{Name: "test", CacheEntries: 100}, e)
	msg := crlf(multipart(attachment("x.exe", "EVIL payload")))
	for i, received := range []string{"Received: from a\r\n", "Received: from b\r\n"} {
		raw := []byte(received + msg)
		v, err := s.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		f, _ := v.First(verdict.Infected)
		if v.Status != verdict.Infected || f.FileName != "x.exe" || v.Cached {
			t.Fatalf("try %d: %+v", i, v)
		}
	}
	parts := 0
	for _, s := range e.streams {
		if s == "EVIL payload" {
			parts++
		}
	}
	if parts != 1 {
		t.Errorf("the attachment went to the engine %d times, want 1", parts)
	}
	if hits, _ := s.PartCacheStats(); hits != 1 {
		t.Errorf("part cache hits %d, want 1", hits)
	}
}

// refreshNow makes the known versions old and waits for their refresh.
func refreshNow(s *Scanner) {
	s.vers.mu.Lock()
	s.vers.fresh = time.Time{}
	s.vers.mu.Unlock()
	if _, wait := s.knownVersions(); wait != nil {
		<-wait
	}
}

// stuckEngine's Version blocks until release is closed, then fails; calls
// counts the calls.
type stuckEngine struct {
	*fakeEngine
	calls   atomic.Int32
	release chan struct{}
	fail    atomic.Bool
}

func (e *stuckEngine) Version(ctx context.Context) (verdict.Engine, error) {
	e.calls.Add(1)
	select {
	case <-e.release:
	case <-ctx.Done():
		return verdict.Engine{}, ctx.Err()
	}
	if e.fail.Load() {
		return verdict.Engine{}, errors.New("down")
	}
	return verdict.Engine{Name: "fake", Version: "1.0", SignatureVersion: "7"}, nil
}

// TestVersionsBackground: once versions are known, Versions answers at once
// while an engine hangs on its VERSION, one refresh at a time runs, and an
// engine that fails keeps its last known version.
func TestVersionsBackground(t *testing.T) {
	e := &stuckEngine{fakeEngine: &fakeEngine{}, release: make(chan struct{})}
	s := New(Options{Name: "test"}, e)
	if v := s.KnownVersions(); len(v) != 1 || v[0].Name != "fake" || v[0].SignatureVersion != "" {
		t.Fatalf("KnownVersions before any answer = %+v, want the name only", v)
	}
	close(e.release)
	if v := s.Versions(t.Context()); v[0].SignatureVersion != "7" {
		t.Fatalf("first Versions = %+v, want the engine's answer", v)
	}

	e.release = make(chan struct{}) // no refresh runs now: safe to swap
	e.fail.Store(true)
	s.vers.mu.Lock()
	s.vers.fresh = time.Time{}
	s.vers.mu.Unlock()
	before := e.calls.Load()
	start := time.Now()
	for range 50 {
		if v := s.Versions(t.Context()); v[0].SignatureVersion != "7" {
			t.Fatalf("Versions while the engine hangs = %+v, want the last known", v)
		}
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("50 Versions took %v while the engine hangs", took)
	}
	if n := e.calls.Load() - before; n > 1 {
		t.Errorf("%d VERSION calls in flight, want one refresh at a time", n)
	}
	_, wait := s.knownVersions()
	close(e.release)
	<-wait
	if v := s.KnownVersions(); v[0].SignatureVersion != "7" {
		t.Errorf("after a failed refresh = %+v, want the last known kept", v)
	}
}

// panicEngine panics on a stream with "PANIC" in it, as a buggy decoder or
// engine binding would; otherwise it is fakeEngine.
type panicEngine struct{ fakeEngine }

func (e *panicEngine) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Detection{}, err
	}
	if bytes.Contains(b, []byte("PANIC")) {
		panic("engine bug on PANIC")
	}
	return e.fakeEngine.Scan(ctx, bytes.NewReader(b))
}

func TestScanRecoversPanic(t *testing.T) {
	e := &panicEngine{}
	// One engine call at a time: a slot not given back by the panicking
	// call would hang the scan after it.
	spoolDir := t.TempDir()
	sc := New(Options{Name: "test", MaxEngineCalls: 1, SpoolDir: spoolDir, PartMemory: 16}, e)
	for i := range 3 {
		raw := []byte(crlf(multipart(textPart, attachment("bug.bin", "PANIC "+strings.Repeat("x", 100)))))
		v, err := sc.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
		pe, ok := errors.AsType[*PanicError](err)
		if v != nil || !ok || pe.Value != "engine bug on PANIC" || !strings.Contains(string(pe.Stack), "panicEngine") {
			t.Fatalf("scan %d: verdict %+v, err %v", i, v, err)
		}
		if strings.Contains(err.Error(), "goroutine") {
			t.Errorf("error carries the stack: %q", err)
		}
	}
	if left, _ := os.ReadDir(spoolDir); len(left) != 0 {
		t.Errorf("spilled parts left after the panics: %v", left)
	}
	raw := []byte(crlf(multipart(textPart, attachment("x.exe", "EVIL"))))
	v, err := sc.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	if err != nil || v.Status != verdict.Infected {
		t.Fatalf("scan after the panics: %+v, %v", v, err)
	}
}
