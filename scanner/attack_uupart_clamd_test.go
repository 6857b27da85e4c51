package scanner

import (
	"bytes"
	"context"
	"testing"

	"github.com/avstation/avstation/scanner/textenc/textenctest"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// TestAttackUUEncodedTransferEncoding: a part whose
// Content-Transfer-Encoding is x-uuencode, which Python's email package
// decodes (uu.decode takes any octal mode): clamd's mail parser does not
// with a begin line of mode 0644, and the walk passed the body on raw.
func TestAttackUUEncodedTransferEncoding(t *testing.T) {
	client := startClamd(t)
	eicar := string(harness.EICAR())
	for _, cte := range []string{"x-uuencode", "uuencode", "x-uue"} {
		msg := multipart(textPart, "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.com\"\nContent-Transfer-Encoding: "+cte+
			"\n\nbegin 0644 e.com\n"+textenctest.Uuencode([]byte(eicar))+"`\nend\n")
		raw := []byte(crlf(msg))
		v, err := New(Options{Name: "test"}, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			t.Fatal(err)
		}
		if v.Status != verdict.Infected {
			t.Errorf("%s: status %s, want infected; findings %+v", cte, v.Status, v.Findings)
		}
	}
}
