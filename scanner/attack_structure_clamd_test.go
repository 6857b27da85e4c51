package scanner

import (
	"strings"
	"testing"
)

// TestAttackSkeletonStructure: messages clamd reads into other parts than
// go-message (and the index) does, because of how the multipart says its
// boundary or a bare CR in its header (which ends clamd's header there,
// before the Content-Type). clamd then decodes the attachment and the
// part after it as one: EICAR whose beginning is in the attachment and
// whose end is in the next part (after the characters of the boundary
// line) is found by clamd sent the whole message. Before the fix the
// skeleton took the attachment's body away from clamd and the walk
// decoded it alone: clean.
func TestAttackSkeletonStructure(t *testing.T) {
	x, rest, b := splitEicar(t)
	var tests []misreadCase
	for _, tt := range []struct{ name, header, boundary string }{
		{"quoted boundary and a ';' at the end", `Content-Type: multipart/mixed; boundary="B";`, "B"},
		{"unquoted boundary and a ';' at the end", `Content-Type: multipart/mixed; boundary=B;`, "B"},
		{"quoted boundary, space and ';'", `Content-Type: multipart/mixed; boundary="B" ;`, "B"},
		{"RFC 2231 continuation", `Content-Type: multipart/mixed; boundary*0="` + b[:2] + `"; boundary*1="` + b[2:] + `"`, "B"},
		{"boundary= in another parameter", `Content-Type: multipart/mixed; name="x;boundary=QQQQ"; boundary="B"`, "B"},
		{"boundary ending in a space", `Content-Type: multipart/mixed; boundary="B "`, "B "},
		{"bare CR in the message header", "X-A: b\r\rSubject: t\nContent-Type: multipart/mixed; boundary=\"B\"", "B"},
	} {
		bnd := strings.ReplaceAll(tt.boundary, "B", b)
		msg := "From: a@example.org\nMIME-Version: 1.0\n" + strings.ReplaceAll(tt.header, `"B`, `"`+b) + "\n\n--" + bnd + "\n" + textPart + "\n--" + bnd + "\n" +
			"Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n\n" + wrapped(x) +
			"\n--" + bnd + "\n\n" + rest[4:] + "\n--" + bnd + "--\n"
		tests = append(tests, misreadCase{tt.name, strings.Replace(msg, "boundary=B;", "boundary="+b+";", 1), true})
	}
	checkMisread(t, tests)
}
