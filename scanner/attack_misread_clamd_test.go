package scanner

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// misreadCase is a message and whether clamd sent it whole finds EICAR.
type misreadCase struct {
	name     string
	msg      string // crlf() is applied
	rawFinds bool
}

// checkMisread asserts what clamd finds in the whole message and that the
// scanner (real clamd, default options) finds EICAR: a real reader (the
// walk, Python's email package) decodes it in every case.
func checkMisread(t *testing.T, tests []misreadCase) {
	t.Helper()
	client := startClamd(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(crlf(tt.msg))
			res, err := client.Scan(context.Background(), bytes.NewReader(raw))
			if err != nil || res.Found != tt.rawFinds {
				t.Fatalf("clamd sent the whole message: %+v, %v; want found %v", res, err, tt.rawFinds)
			}
			v, err := New(Options{Name: "test"}, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if v.Status != verdict.Infected {
				t.Errorf("status %s, want infected; findings %+v", v.Status, v.Findings)
			}
		})
	}
}

// TestAttackSkeletonBoundaryForms: boundaries that pass for plain and
// that clamd reads otherwise than go-message. clamd splits a Content-Type
// at every ';', in quotes or not, and so takes the boundary "XX;YY" for
// "XX"; it decodes RFC 2047 words in the whole header line, and so takes
// "=?us-ascii?q?XXYY?=" for "XXYY". Then no delimiter line of the message
// is one to it (lines with its own boundary, which go-message passes over,
// may be), and it decodes the attachment and the part after it as one
// body: EICAR whose beginning is in the attachment and whose end is in the
// next part is found by clamd sent the whole message. Before the fix the
// skeleton took the attachment's body away from clamd and the walk
// decoded it alone: clean.
func TestAttackSkeletonBoundaryForms(t *testing.T) {
	x, rest, b := splitEicar(t)
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n"
	att := "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n\n" + wrapped(x)
	// mp: a text part, the attachment and a part with the end of EICAR,
	// delimited by "--"+bnd, clamd's own delimiter lines ("--"+extra)
	// before the first two when extra is set.
	mp := func(bnd, extra, next string) string {
		pre := ""
		if extra != "" {
			pre = "--" + extra + "\n"
		}
		return hdr + "Content-Type: multipart/mixed; boundary=\"" + bnd + "\"\n\n" + pre + "--" + bnd + "\n" + textPart + "\n" + pre + "--" + bnd + "\n" + att +
			"\n--" + bnd + "\n\n" + next + "\n--" + bnd + "--\n"
	}
	semi := b[:2] + ";" + b[2:]
	word := "=?us-ascii?q?" + b + "?="
	checkMisread(t, []misreadCase{
		// The ';' and the '-' of the delimiter line are no base64: clamd
		// decodes its boundary's characters, the first of rest.
		{"a ';' in the boundary", mp(semi, "", rest[4:]), true},
		{"a ';' in the boundary, clamd's delimiters", mp(semi, b[:2], rest[4:]), true},
		// clamd decodes a base64 line up to its first '=': nothing of
		// the delimiter line.
		{"an encoded word as the boundary, clamd's delimiters", mp(word, b, rest), true},
	})
}

// TestAttackClamdBodyAsHeader: clamd reads a part's header on past its
// blank line when the line after begins with "Content" (or "filename=",
// or holds "base64"): the part's body, the next delimiter line and the
// next part's header are header lines to it, and the next part's body is
// the part's body, decoded with its transfer encoding. A base64 body may
// well begin with "Content". So clamd sent the whole message does not
// decode the attachment, and decodes the text/plain part after it as
// base64: EICAR there was found raw, and missed with the attachment cut
// out of the skeleton (where the blank line is followed by another).
// And an attachment that begins so, not cut, was not sent (clamd's raw
// scan was taken to have read it) though the walk decodes EICAR in it.
func TestAttackClamdBodyAsHeader(t *testing.T) {
	eicar := string(harness.EICAR())
	content, _ := base64.StdEncoding.DecodeString("ContentA")
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\n"
	att := func(cte, body string) string {
		return "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: " + cte + "\n\n" + body
	}
	checkMisread(t, []misreadCase{
		{"cut attachment, then base64 in a text part", hdr + att("base64", wrapped(string(content)+randomText(12<<10))) + "\n--BB\nContent-Type: text/plain\n\n" + b64(eicar) + "\n--BB--\n", true},
		{"small base64 attachment", hdr + att("base64", b64(string(content)+eicar)) + "\n--BB--\n", false},
		{"quoted-printable attachment", hdr + att("quoted-printable", "Contents=\n"+qpAll(eicar)) + "\n--BB--\n", false},
	})
}

// TestAttackClamdOnePart: clamd reads of a multipart/signed or
// multipart/parallel only one part, a text one when there is one; the
// attachments beside it it neither decodes nor scans. The scanner took
// its raw scan to cover them and sent them not: EICAR in them was clean.
// A Content-Type whose name has a comment, which go-message reads as
// another field, is one to clamd, and may say signed.
func TestAttackClamdOnePart(t *testing.T) {
	eicar := string(harness.EICAR())
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n"
	with := func(ct string) string {
		return hdr + "Content-Type: " + ct + "; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n"
	}
	mixed := strings.TrimPrefix(multipart(textPart, attachment("e.com", eicar)), "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n")
	checkMisread(t, []misreadCase{
		{"multipart/signed", with(`multipart/signed; protocol="application/pgp-signature"; micalg=pgp-sha256`), false},
		{"multipart/Signed", with("multipart/Signed"), false},
		{"multipart/parallel", with("multipart/parallel"), false},
		{"a multipart/mixed and a text part signed", hdr + "Content-Type: multipart/signed; boundary=\"SS\"\n\n--SS\n" + mixed + "\n--SS\n" + textPart + "\n--SS--\n", false},
		{"Content-Type(x): multipart/signed", strings.Replace(with("multipart/mixed"), "\n\n--BB\n", "\nContent-Type(x): multipart/signed; boundary=\"BB\"\n\n--BB\n", 1), false},
	})
}

// TestAttackClamdNestedBoundaries: a multipart inside a multipart with a
// boundary like the outer one's. clamd takes "--" and the outer boundary
// after any number of '-' for an outer delimiter, and any line that
// begins with "--", the outer boundary in any case and "--" for the outer
// close delimiter. With the inner boundary "-" and the outer one, the
// inner delimiter lines are outer ones to clamd, and the inner close
// delimiter none: it decodes the inner attachment, that line and the
// inner epilogue as one body, and EICAR split across the attachment and
// the epilogue was found raw and missed with the attachment cut out. With
// the inner boundary the outer one in capitals and "--y", every inner
// delimiter line closes the outer multipart to clamd, which never reads
// the inner parts: an attachment there, not cut, was sent by no one.
func TestAttackClamdNestedBoundaries(t *testing.T) {
	eicar := string(harness.EICAR())
	x, rest, b := splitEicar(t)
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n"
	att := "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n\n" + wrapped(x)
	nested := func(outer, inner, part, epilogue string) string {
		return hdr + "Content-Type: multipart/mixed; boundary=\"" + outer + "\"\n\n--" + outer + "\n" + textPart + "\n--" + outer + "\n" +
			"Content-Type: multipart/mixed; boundary=\"" + inner + "\"\n\n--" + inner + "\n" + part + "\n--" + inner + "--\n" + epilogue + "\n--" + outer + "--\n"
	}
	checkMisread(t, []misreadCase{
		{"inner boundary '-' and the outer one", nested(b, "-"+b, att, rest[4:]), true},
		{"inner boundary '---' and the outer one", nested(b, "---"+b, att, rest[4:]), true},
		{"inner boundary the outer one in capitals and --y", nested("xxxx", "XXXX--y", attachment("e.com", eicar), ""), false},
	})
}

// TestAttackClamdLongHeaderLine: clamd reads a line of 999 bytes or more
// as pieces of 999 and the rest, each a line: a piece that looks like a
// header field is one to it (and a line of just 999 bytes is followed by
// an empty one, which ends the header: clamd still found EICAR so).
// go-message reads one field. A Content-Type saying multipart/signed
// there had clamd read only the text part: it decoded no attachment, and
// the scanner sent none.
func TestAttackClamdLongHeaderLine(t *testing.T) {
	eicar := string(harness.EICAR())
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"BB\"\n"
	pad := "X-Pad: " + strings.Repeat("a", 999-len("X-Pad: "))
	checkMisread(t, []misreadCase{
		{"a Content-Type after 999 bytes", hdr + pad + "Content-Type: multipart/signed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n", false},
		{"a part header line of 999 bytes", hdr + "\n--BB\n" + textPart + "\n--BB\nContent-Type: application/octet-stream\n" + pad + "\nContent-Transfer-Encoding: base64\n\n" + b64(eicar) + "\n--BB--\n", true},
	})
}

// TestAttackClamdRunOnField: clamd reads a message's Content-* field
// that ends with ';' or holds an odd number of '"' (a quoted pair:
// filename="a\"b") on into the next header line, which go-message reads
// as a field of its own. A Content-Type after it is then none to clamd:
// with "inline;" clamd decoded no attachment (the scanner sent none);
// with the quoted pair it found, by its bounce heuristics, EICAR split
// across a cut attachment and the next part, which the skeleton hid. In
// a body part's header any field that ends with ';' takes the next line
// if it holds '=': "X-Foo: a;" hid a multipart part's Content-Type, and
// clamd decoded nothing of it.
func TestAttackClamdRunOnField(t *testing.T) {
	eicar := string(harness.EICAR())
	x, rest, b := splitEicar(t)
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n"
	att := "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n\n" + wrapped(x)
	checkMisread(t, []misreadCase{
		{"Content-Disposition: inline;", hdr + "Content-Disposition: inline;\nContent-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\n" +
			attachment("a.bin", "clean!") + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n", false},
		{"X-Foo: a; in a part's header", hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\nX-Foo: a;\nContent-Type: multipart/mixed; boundary=CC\n\n--CC\n" +
			textPart + "\n--CC\n" + attachment("e.com", eicar) + "\n--CC--\n\n--BB--\n", false},
		{"a quoted pair in a filename", hdr + "Content-Disposition: inline; filename=\"a\\\"b\"\nContent-Type: multipart/mixed; boundary=\"" + b + "\"\n\n--" + b + "\n" + textPart + "\n--" + b + "\n" +
			att + "\n--" + b + "\n\n" + rest[4:] + "\n--" + b + "--\n", true},
	})
}
