package scanner

import (
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/avstation/avstation/scanner/archive/archivetest"
	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/verdict"
)

// unpacker records what it is asked about like fakeEngine, and says it
// unpacks mail as clamd does. It finds "EVIL" in a stream as it is, and
// answers raw (the first call, the raw message) with rawReply when set.
type unpacker struct {
	mu       sync.Mutex
	streams  []string
	rawReply *Detection
}

func (e *unpacker) Name() string      { return "unpacker" }
func (e *unpacker) UnpacksMail() bool { return true }
func (e *unpacker) Scan(ctx context.Context, r io.Reader) (Detection, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return Detection{}, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.streams = append(e.streams, string(b))
	if len(e.streams) == 1 && e.rawReply != nil {
		return *e.rawReply, nil
	}
	if bytes.Contains(b, []byte("EVIL")) {
		return Detection{Found: true, Threat: "Test.Evil", Raw: "stream: Test.Evil FOUND"}, nil
	}
	return Detection{}, nil
}
func (e *unpacker) Version(ctx context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "unpacker", Version: "1.0", SignatureVersion: "42"}, nil
}

// zipOfN is a zip of n members named f0.txt… holding their index, then
// last, when not empty, as "last.com".
func zipOfN(t *testing.T, n int, last string) string {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for i := range n {
		f, _ := w.Create(fmt.Sprintf("f%d.txt", i))
		fmt.Fprint(f, i)
	}
	if last != "" {
		f, _ := w.Create("last.com")
		f.Write([]byte(last))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func nested(n int, leaf string) string {
	body := leaf
	for i := n; i > 0; i-- {
		body = fmt.Sprintf("Content-Type: multipart/mixed; boundary=\"n%d\"\n\n--n%d\n%s\n--n%d--\n", i, i, body, i)
	}
	return "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n" + body
}

// TestRawFirst: an engine that unpacks mail is sent the raw message, and
// a part or member only where it cannot have seen it there; an engine
// that does not (fakeEngine, a command-line scanner) is sent every one.
// Each case fails if the content named in sent is not sent.
func TestRawFirst(t *testing.T) {
	tiny := Options{Clamd: ClamdLimits{MaxFiles: 6}}
	small := Options{Clamd: ClamdLimits{MaxFileSize: 64}}
	fileSize := Options{Clamd: ClamdLimits{MaxFileSize: 1000}}
	big := strings.Repeat("x", 5000)
	scanSize := Options{Clamd: ClamdLimits{MaxScanSize: 2000}}
	limit := &Detection{Found: true, Kind: verdict.KindLimitExceeded, Detail: "clamd MaxFiles"}
	tests := []struct {
		name     string
		opt      Options
		rawReply *Detection
		msg      string
		// sent are what the unpacker is asked about after the raw message
		// (as decoded content), in order.
		sent []string
	}{
		{"clean text and zip: the raw message only", Options{}, nil,
			multipart(textPart, attachment("a.zip", zipOfN(t, 3, "fine"))), nil},
		{"uuencoded file: clamd decodes only some", Options{}, nil,
			multipart("Content-Type: text/plain\n\n" + uuencodeText("a.com", "uu data")), []string{"uu data"}},
		{"yEnc file: clamd does not decode it", Options{}, nil,
			multipart("Content-Type: text/plain\n\n" + yencText("a.com", "yenc data")), []string{"yenc data"}},
		{"member decrypted with a password from the text", Options{TryPasswords: true}, nil,
			multipart("Content-Type: text/plain\n\nthe password is s3cret", attachment("s.zip", string(zipCrypto(t, "plan.txt", "the plan", "s3cret")))),
			[]string{"the plan"}},
		{"members of a prefixed zip", Options{}, nil,
			multipart(textPart, attachment("a.zip", "\x00"+string(plainZip(t, "a.txt", "inner")))), []string{"inner"}},
		{"members of a RAR: clamd here has no unrar", Options{}, nil,
			multipart(textPart, attachment("a.rar", string(archivetest.RAR4("a.txt", []byte("inner"), 0)))), []string{"inner"}},
		{"parts of a transfer-encoded attached message: clamd may not decode it", Options{}, nil,
			"From: a@example.org\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n" + b64(crlf("Content-Type: text/plain\n\ninner text")),
			[]string{"inner text"}},
		{"a gzip clamd opens", Options{}, nil,
			multipart(textPart, attachment("a.gz", gzipOf(t, "inner"))), nil},
		{"a part at clamd's MaxRecursion", Options{MaxDepth: 30}, nil,
			nested(16, attachment("deep.bin", "deep data")), []string{"deep data"}},
		{"a part within clamd's MaxRecursion", Options{MaxDepth: 30}, nil,
			nested(15, attachment("deep.bin", "deep data")), nil},
		{"members past clamd's MaxFiles", tiny, nil,
			multipart(textPart, attachment("a.zip", zipOfN(t, 5, "last"))), []string{"2", "3", "4", "last"}},
		{"a member larger than clamd's MaxFileSize", fileSize, nil,
			multipart(textPart, attachment("a.zip", zipOfN(t, 1, big))), []string{big}},
		{"parts past clamd's MaxScanSize", scanSize, nil,
			multipart(textPart, attachment("a.bin", strings.Repeat("x", 900)), attachment("b.bin", "after")), []string{strings.Repeat("x", 900), "after"}},
		{"raw message larger than MaxFileSize: everything", small, nil,
			multipart(textPart, attachment("a.bin", strings.Repeat("x", 100))), []string{"hello list", strings.Repeat("x", 100)}},
		{"raw limit alert: every part", Options{}, limit,
			multipart(textPart, attachment("a.bin", "data")), []string{"hello list", "data"}},
		{"after a MIME anomaly: every part", Options{}, nil,
			"Content-Type: multipart/mixed; boundary=BB\n\n--BB\n" + textPart + "\n--BB\n" + attachment("a.txt", "fine"), []string{"fine"}},
		{"attachments mode: no raw scan, every attachment", Options{Mode: ModeAttachments}, nil,
			multipart(textPart, attachment("a.bin", "data")), []string{"data"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &unpacker{rawReply: tt.rawReply}
			scan(t, tt.opt, e, tt.msg)
			got := e.streams
			if tt.opt.Mode != ModeAttachments {
				if len(got) == 0 || got[0] != crlf(tt.msg) {
					t.Fatalf("first stream is not the raw message: %q", got)
				}
				got = got[1:]
			}
			if !slices.Equal(got, tt.sent) {
				t.Errorf("sent %q after the raw message, want %q", got, tt.sent)
			}
		})
	}
}

// TestEveryPartToOtherEngines: an engine that does not unpack mail is
// sent every part and member, and the raw message last.
func TestEveryPartToOtherEngines(t *testing.T) {
	msg := multipart(textPart, attachment("a.zip", zipOfN(t, 2, "")))
	e := &fakeEngine{}
	scan(t, Options{}, e, msg)
	want := []string{"hello list", "0", "1", zipOfN(t, 2, ""), crlf(msg)}
	if !slices.Equal(e.streams, want) {
		t.Errorf("sent %q, want %q", e.streams, want)
	}
	// Beside clamd, the same: each engine is judged by itself.
	u, e := &unpacker{}, &fakeEngine{}
	raw := []byte(crlf(msg))
	if _, err := New(Options{Name: "test"}, u, e).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(e.streams, want) || !slices.Equal(u.streams, []string{crlf(msg)}) {
		t.Errorf("with both: external sent %q, want %q; unpacker sent %q, want the raw message only", e.streams, want, u.streams)
	}
}

// TestRawFirstFindings: when the raw scan finds something, the parts are
// scanned too, and the verdict is the one an engine sent every part
// gives: the finding names the part and its file.
func TestRawFirstFindings(t *testing.T) {
	tests := []struct {
		name, msg string
		path      string
	}{
		{"virus in a 7bit attachment", multipart(textPart, "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.com\"\n\nEVIL"), "2"},
		{"virus in a zip member", multipart(textPart, "Content-Type: application/zip\nContent-Disposition: attachment; filename=\"e.zip\"\n\n"+string(plainZipStored(t, "e.com", "EVIL"))), "2/e.zip/e.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := scan(t, Options{}, &unpacker{}, tt.msg)
			ref := scan(t, Options{}, &fakeEngine{}, tt.msg)
			for i := range ref.Findings {
				ref.Findings[i].Engine = "unpacker"
			}
			if v.Status != verdict.Infected || !reflect.DeepEqual(v.Findings, ref.Findings) {
				t.Fatalf("findings %+v, want %+v", v.Findings, ref.Findings)
			}
			if f, _ := v.First(verdict.Infected); f.Path != tt.path {
				t.Errorf("first finding at %q, want %q", f.Path, tt.path)
			}
			if last := v.Findings[len(v.Findings)-1]; last.Path != "" {
				t.Errorf("last finding %+v, want the raw message's", last)
			}
		})
	}
}

// plainZipStored is a zip of one stored (uncompressed) member, so that
// its content is in the raw bytes as it is.
func plainZipStored(t *testing.T, name, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte(content))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestVerdictCacheDigest: a digest the caller gives (WithDigest) keys the
// verdict cache as the scanner's own hash would, so the message is not
// hashed again; a malformed one is ignored.
func TestVerdictCacheDigest(t *testing.T) {
	clean := []byte(crlf(multipart(textPart)))
	evil := []byte(crlf(multipart("Content-Type: application/octet-stream\n\nEVIL")))
	sum := sha256.Sum256(clean)
	digest := hex.EncodeToString(sum[:])
	tests := []struct {
		name   string
		digest string // given with the evil message, after clean was scanned with its own digest
		cached bool
	}{
		{"the given digest is the key", digest, true},
		{"a malformed digest is ignored", strings.ToUpper(digest), false},
		{"no digest: the message is hashed", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Options{Name: "test", CacheEntries: 10}, &unpacker{})
			scanWith := func(ctx context.Context, raw []byte) *verdict.Verdict {
				v, err := s.Scan(ctx, bytes.NewReader(raw), int64(len(raw)))
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			scanWith(WithDigest(context.Background(), digest), clean)
			if again := scanWith(context.Background(), clean); !again.Cached {
				t.Fatal("the same message hashed by the scanner missed the entry keyed by its given digest")
			}
			// The evil message under the clean one's digest: only a digest
			// that is used gives the clean message's cached verdict.
			v := scanWith(WithDigest(context.Background(), tt.digest), evil)
			if v.Cached != tt.cached || (v.Status == verdict.Infected) == tt.cached {
				t.Errorf("cached %v, status %s; want cached %v", v.Cached, v.Status, tt.cached)
			}
		})
	}
}

// countingClamder counts the streams a Clamder is asked about.
type countingClamder struct {
	alertClamd
	mu sync.Mutex
	n  int
}

func (c *countingClamder) Scan(ctx context.Context, r io.Reader) (clamd.Result, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return c.alertClamd.Scan(ctx, r)
}

// TestClamdUnchecked: a clamd not yet known to unpack mail is sent every
// part, as before raw-first; once confirmed, the raw message only.
func TestClamdUnchecked(t *testing.T) {
	msg := multipart(textPart, attachment("a.zip", zipOfN(t, 2, "")))
	c := &countingClamder{}
	e, confirm := ClamdUnchecked(c)
	s := New(Options{Name: "test"}, e)
	raw := []byte(crlf(msg))
	// A scan started before the answer waits for it (a station's first
	// messages are not all sent part by part).
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := s.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw))); err != nil {
			t.Error(err)
		}
	}()
	time.Sleep(50 * time.Millisecond) // let it reach the wait; if it did not yet, it finds the answer
	confirm(true)
	<-done
	if c.n != 1 {
		t.Errorf("a scan started before the confirmation: %d streams to clamd, want 1", c.n)
	}
	for _, tt := range []struct {
		confirm bool
		streams int
	}{{false, 5}, {true, 1}, {false, 5}} {
		confirm(tt.confirm)
		c.n = 0
		if _, err := s.Scan(context.Background(), bytes.NewReader(raw), int64(len(raw))); err != nil {
			t.Fatal(err)
		}
		if c.n != tt.streams {
			t.Errorf("confirmed %v: %d streams to clamd, want %d", tt.confirm, c.n, tt.streams)
		}
	}
}

// gzipOf is data gzipped.
func gzipOf(t *testing.T, data string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(data))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
