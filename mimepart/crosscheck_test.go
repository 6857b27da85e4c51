package mimepart_test

import (
	"bytes"
	"context"
	"io"
	"regexp"
	"testing"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/quarantine"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/strip"
	"github.com/avstation/avstation/verdict"
)

// crossCheck is the promise: every part path the scanner reports
// resolves through the index, and for every body part the index gives,
// strip removes exactly its bytes and the quarantine keeps exactly them.
func crossCheck(t *testing.T, msg []byte, m *mimepart.Message) {
	t.Helper()
	lim := mimepart.TestLimits()
	s := scanner.New(scanner.Options{Name: "fuzz", MaxDepth: 8, MaxParts: 50, MaxHeaderBytes: lim.MaxHeaderBytes,
		SpoolDir: t.TempDir(), TryPasswords: true}, noEngine{})
	v, err := s.Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatalf("Scan: %v", err)
	}
	for _, p := range v.Manifest {
		if part := mimepart.Part(p.Path); part != "" && m.Find(part) == nil {
			t.Fatalf("scanner part %q (manifest %q) not in the index", part, p.Path)
		}
	}
	for _, f := range v.Findings {
		// A structural finding names the part the reader failed to read:
		// the part before it, or the multipart, is in the index.
		part := mimepart.Part(f.Path)
		if part != "" && m.Find(part) == nil && m.Find(parent(part)) == nil {
			t.Fatalf("finding %q at %q: neither it nor its parent is in the index", f.Detail, f.Path)
		}
	}
	var visit func(e *mimepart.Entity)
	visit = func(e *mimepart.Entity) {
		if e.Decoded {
			return
		}
		for _, c := range e.Parts {
			checkStrip(t, msg, m, c)
			checkQuarantine(t, msg, c)
			visit(c)
		}
		if e.Attached != nil {
			visit(e.Attached)
		}
	}
	visit(m.Root)
}

func parent(path string) string {
	for i := len(path) - 1; i >= 0; i-- {
		if path[i] == '/' {
			return path[:i]
		}
	}
	return ""
}

// checkStrip: a successful removal of part c leaves the body but for
// [c.HeaderStart, c.Next) as it was, with the note in its place.
func checkStrip(t *testing.T, msg []byte, m *mimepart.Message, c *mimepart.Entity) {
	var out bytes.Buffer
	rm := strip.Removal{Path: c.Path, FileName: "f", Threat: "t"}
	res, err := strip.Body(bytes.NewReader(msg), int64(len(msg)), []strip.Removal{rm}, nil, &out)
	if err != nil {
		return // strip refuses where readers could disagree
	}
	if len(res.Removed) != 1 || res.Removed[0].Path != c.Path {
		t.Fatalf("strip %q removed %+v", c.Path, res.Removed)
	}
	before, after := msg[m.Root.BodyStart:c.HeaderStart], msg[c.Next:]
	got := out.Bytes()
	if !bytes.HasPrefix(got, before) || !bytes.HasSuffix(got, after) || len(got) < len(before)+len(after) {
		t.Fatalf("strip %q: output is not the body less [%d, %d):\n%q", c.Path, c.HeaderStart, c.Next, got)
	}
	note := got[len(before) : len(got)-len(after)]
	if !bytes.Contains(note, []byte(strip.DefaultReplacement(res.Removed[0]))) {
		t.Fatalf("strip %q: %q in its place, not the note", c.Path, note)
	}
}

var qBoundary = regexp.MustCompile(`boundary="([^"]+)"`)

// checkQuarantine: extracting part c keeps exactly [c.HeaderStart, c.End).
func checkQuarantine(t *testing.T, msg []byte, c *mimepart.Entity) {
	var out bytes.Buffer
	if err := quarantine.ExtractParts(bytes.NewReader(msg), int64(len(msg)), []string{c.Path}, &out); err != nil {
		t.Fatalf("ExtractParts %q: %v", c.Path, err)
	}
	b := qBoundary.FindSubmatch(out.Bytes())
	if b == nil {
		t.Fatalf("ExtractParts %q: no boundary in %q", c.Path, out.Bytes())
	}
	open := []byte("\r\n\r\n--" + string(b[1]) + "\r\n")
	i := bytes.Index(out.Bytes(), open)
	end := []byte("\r\n--" + string(b[1]) + "--\r\n")
	if i < 0 || !bytes.HasSuffix(out.Bytes(), end) {
		t.Fatalf("ExtractParts %q: %q", c.Path, out.Bytes())
	}
	kept := out.Bytes()[i+len(open) : out.Len()-len(end)]
	if want := msg[c.HeaderStart:c.End]; !bytes.Equal(kept, want) {
		t.Fatalf("ExtractParts %q kept %q, the index says %q", c.Path, kept, want)
	}
}

// noEngine finds nothing, so the scan reports the parts it walked.
type noEngine struct{}

func (noEngine) Name() string { return "none" }
func (noEngine) Scan(_ context.Context, r io.Reader) (scanner.Detection, error) {
	_, err := io.Copy(io.Discard, r)
	return scanner.Detection{}, err
}
func (noEngine) Version(context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "none", Version: "0"}, nil
}
