package scanner

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/verdict"
)

// FuzzScanPasswords scans arbitrary messages with the password finder on
// (TryPasswords), and checks invariants of the verdict: no finding without
// a known kind, the status is that of a finding (clean only without any),
// no finding's path outside the message's tree of parts, nothing marked
// decrypted that was not encrypted; and of the finder: every candidate is
// 3-64 characters of the message's text with no control character. Seeds
// (a zip whose password is in the text among them) are in
// testdata/fuzz/FuzzScanPasswords.
func FuzzScanPasswords(f *testing.F) {
	f.Add([]byte(crlf(multipart("Content-Type: text/plain\n\nThe password is: infected", attachment("a.zip", "PK\x03\x04EVIL")))))
	f.Add([]byte("Content-Type: text/html\n\n<p>Kennwort: <b>geheim123</b>&nbsp;</p>"))
	f.Add([]byte("Subject: x\n\npassword pw pwd passwd \x00\x01abc"))
	opt := DefaultOptions()
	opt.Name, opt.MaxDepth, opt.MaxParts, opt.MaxMembers, opt.CacheEntries = "fuzz", 8, 64, 64, 0
	opt.MaxMemberSize, opt.MaxExpanded, opt.PartMemory = 1<<20, 4<<20, 64<<10
	f.Fuzz(func(t *testing.T, msg []byte) {
		o := opt
		o.SpoolDir = t.TempDir()
		v, err := New(o, &fakeEngine{}).Scan(context.Background(), bytes.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatalf("Scan: %v", err)
		}
		checkVerdict(t, v)
		if bytes.Contains(msg, []byte("EVIL")) && v.Status != verdict.Infected {
			t.Fatalf("EVIL in the raw message but status %q", v.Status)
		}
		for _, c := range candidatesIn(string(msg)) {
			if n := utf8.RuneCountInString(c); n < minPasswordLen || n > maxPasswordLen || hasControl(c) || !strings.Contains(string(msg), c) {
				t.Fatalf("candidate %q (%d characters) from %q", c, n, msg)
			}
		}
	})
}

var kinds = map[verdict.Kind]bool{verdict.KindVirus: true, verdict.KindEncrypted: true,
	verdict.KindLimitExceeded: true, verdict.KindUnscannable: true, verdict.KindScanError: true}

func checkVerdict(t *testing.T, v *verdict.Verdict) {
	t.Helper()
	if !verdict.Known(v.Status) {
		t.Fatalf("status %q", v.Status)
	}
	if (v.Status == verdict.Clean) != (len(v.Findings) == 0) {
		t.Fatalf("status %q with %d findings", v.Status, len(v.Findings))
	}
	// The message's tree: the whole message, every part the manifest
	// lists and the multiparts that hold them. A finding may also name
	// the next child of one of these (a part a malformed multipart failed
	// to start), but nothing else.
	parts := map[string]bool{"": true, "0": true}
	for _, p := range v.Manifest {
		for q := mimepart.Part(p.Path); q != ""; q = parent(q) {
			parts[q] = true
		}
		if p.Decrypted && !p.Encrypted {
			t.Fatalf("part %q decrypted but not encrypted", p.Path)
		}
	}
	statusSeen := v.Status == verdict.Clean
	for _, f := range v.Findings {
		if !kinds[f.Kind] {
			t.Fatalf("finding without a known kind: %+v", f)
		}
		if f.Kind.Status() == v.Status {
			statusSeen = true
		}
		if q := mimepart.Part(f.Path); !parts[q] && !parts[parent(q)] {
			t.Fatalf("finding at %q, outside the message's parts %v", f.Path, v.Manifest)
		}
	}
	if !statusSeen {
		t.Fatalf("status %q is no finding's: %+v", v.Status, v.Findings)
	}
}

// parent is the path of the part that holds the part at path ("2/1" → "2",
// "2" → "").
func parent(path string) string {
	i := strings.LastIndexByte(path, '/')
	if i < 0 {
		return ""
	}
	return path[:i]
}
