package scanner

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// TestAttackSkeletonDelimiterPadding: the delimiter line after a cut
// attachment has a tab after the boundary, which go-message (and the
// index) take for transport padding and clamd for no delimiter: to clamd
// the attachment runs on into the next part, whose body (after the
// boundary's own characters) holds the end of EICAR, the attachment its
// beginning. Before the fix the skeleton took the attachment's body away
// from clamd and the scan came back clean.
func TestAttackSkeletonDelimiterPadding(t *testing.T) {
	x, rest, bnd := splitEicar(t)
	var tests []misreadCase
	for _, pad := range []string{"\t", " \t"} {
		msg := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"" + bnd + "\"\n\n--" + bnd + "\n" + textPart + "\n--" + bnd + "\n" +
			"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n\n" + wrapped(x) +
			"\n--" + bnd + pad + "\n\n" + rest[4:] + "\n--" + bnd + "--\n"
		tests = append(tests, misreadCase{fmt.Sprintf("padding %q", pad), msg, true})
	}
	checkMisread(t, tests)
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
