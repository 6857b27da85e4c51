package scanner

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// TestAttackSkeletonDelimiterPadding: the delimiter line after a cut
// attachment has a tab after the boundary, which go-message (and the
// index) take for transport padding and clamd for no delimiter: to clamd
// the attachment runs on into the next part, whose body (after the
// boundary's own characters) holds the end of EICAR, the attachment its
// beginning. Before the fix the skeleton took the attachment's body away
// from clamd and the scan came back clean.
func TestAttackSkeletonDelimiterPadding(t *testing.T) {
	cd := harness.StartClamd(t)
	client, err := clamd.New(cd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	x, rest, bnd := splitEicar(t)
	for _, pad := range []string{"\t", " \t"} {
		msg := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"" + bnd + "\"\n\n--" + bnd + "\n" + textPart + "\n--" + bnd + "\n" +
			"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n\n" + wrapped(x) +
			"\n--" + bnd + pad + "\n\n" + rest[4:] + "\n--" + bnd + "--\n"
		raw := []byte(crlf(msg))
		res, err := client.Scan(context.Background(), bytes.NewReader(raw))
		if err != nil || !res.Found {
			t.Fatalf("clamd sent the whole message: %+v, %v; want EICAR found", res, err)
		}
		v, err := New(Options{Name: "test"}, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != verdict.Infected {
			t.Errorf("padding %q: status %s, want infected; findings %+v", pad, v.Status, v.Findings)
		}
	}
}

// splitEicar is EICAR split across a cut attachment and the part after
// it: x is the attachment's content, whose base64 ends with a whole
// quantum and the beginning of EICAR; rest is base64 of EICAR's end, and
// its first 4 characters are the boundary, so that a reader that runs
// the attachment on over the next delimiter line decodes EICAR whole.
func splitEicar(t *testing.T) (x, rest, boundary string) {
	t.Helper()
	eicar := string(harness.EICAR())
	x = randomText(12<<10) + eicar[:30]
	for len(x)%3 != 0 {
		x = "q" + x
	}
	rest = base64.StdEncoding.EncodeToString([]byte(eicar[30:] + "zzzzzz"))
	boundary = rest[:4]
	if strings.ContainsAny(boundary, "+/") {
		t.Fatalf("boundary %q", boundary)
	}
	return x, rest, boundary
}
