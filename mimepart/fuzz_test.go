package mimepart_test

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/avstation/avstation/mimepart"
)

// FuzzIndex indexes arbitrary bytes. The walk of the index must meet what
// go-message's reader meets (the scanner's verdicts rest on it); every
// part must lie within the message and within its parent, with a unique
// path; and scanner, strip and quarantine must agree through it
// (crossCheck). Seeds are in testdata/fuzz/FuzzIndex.
func FuzzIndex(f *testing.F) {
	for _, msg := range mimepart.IndexCases() {
		f.Add([]byte(msg))
		f.Add([]byte(strings.ReplaceAll(msg, "\n", "\r\n")))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		lim := mimepart.TestLimits()
		lim.MaxParts, lim.MaxDepth = 50, 8
		got, m := mimepart.IndexEvents(msg, lim)
		want := mimepart.RefEvents(msg, lim)
		// go-message's reading has no raw header lines to judge: the
		// anomaly of a header line other readers end the header at is
		// checked against the bytes instead.
		got = slices.DeleteFunc(got, func(ev string) bool {
			if !strings.Contains(ev, "some readers end the header there") {
				return false
			}
			if !splitsHeader(msg) {
				t.Fatalf("message %q: %s, but no line some reader ends a header at", msg, ev)
			}
			return true
		})
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("message %q\nindex:\n  %s\ngo-message:\n  %s", msg, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
		}
		if m == nil {
			t.Fatal("no index")
		}
		checkTree(t, m.Root, 0, int64(len(msg)), map[string]bool{})
		crossCheck(t, msg, m)
	})
}

// checkTree checks that e and its parts lie in [lo, hi) of the message,
// in order, with unique paths.
func checkTree(t *testing.T, e *mimepart.Entity, lo, hi int64, seen map[string]bool) {
	t.Helper()
	if e.Decoded {
		return
	}
	if !(lo <= e.HeaderStart && e.HeaderStart <= e.BodyStart && e.BodyStart <= e.End && e.End <= e.Next && e.Next <= hi) {
		t.Fatalf("part %q at %d %d %d %d outside [%d, %d)", e.Path, e.HeaderStart, e.BodyStart, e.End, e.Next, lo, hi)
	}
	if !e.Message {
		if seen[e.Path] {
			t.Fatalf("path %q twice", e.Path)
		}
		seen[e.Path] = true
	}
	prev := e.BodyStart
	for i, c := range e.Parts {
		if c.Path != mimepart.Join(e.Path, i+1) {
			t.Fatalf("part %d of %q has path %q", i+1, e.Path, c.Path)
		}
		checkTree(t, c, prev, e.End, seen)
		prev = c.Next
	}
	if e.Attached != nil {
		checkTree(t, e.Attached, e.BodyStart, e.End, seen)
	}
}

// splitsHeader reports whether msg has a line that some reader ends a
// header at, as mimepart's anomaly says: a bare CR, a NUL, white space
// before a colon, a line that starts with a colon, one of white space
// alone, or a field name with a comment or an encoded word (independent
// of the index's own check: a weaker, byte-level one).
func splitsHeader(msg []byte) bool {
	if bytes.IndexByte(msg, 0) >= 0 || bytes.Contains(msg, []byte(" :")) || bytes.Contains(msg, []byte("\t:")) ||
		bytes.HasPrefix(msg, []byte(":")) || bytes.Contains(msg, []byte("\n:")) ||
		bytes.IndexByte(msg, '(') >= 0 || bytes.Contains(msg, []byte("=?")) {
		return true
	}
	for i, c := range msg {
		if c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') {
			return true
		}
	}
	for _, l := range bytes.Split(msg, []byte("\n")) {
		l = bytes.TrimSuffix(l, []byte("\r"))
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') && len(bytes.TrimLeft(l, " \t\v\f")) == 0 {
			return true
		}
	}
	return false
}
