package scanner

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
)

// randomText is n bytes an attachment may hold: binary, so base64 of it
// is long lines of the whole alphabet.
func randomText(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return string(b)
}

// wrapped is base64 of s in 76-character lines, as mail carries it.
func wrapped(s string) string {
	enc := b64(s)
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	return b.String() + enc
}

// TestCutAttachments: the skeleton keeps the message but the bodies of
// large base64 attachments that every reader reads the same, and only
// when the index met nothing to guess about.
func TestCutAttachments(t *testing.T) {
	big := randomText(20 << 10)
	att := func(name, body string) string {
		return "Content-Type: application/zip\nContent-Disposition: attachment; filename=\"" + name + "\"\nContent-Transfer-Encoding: base64\n\n" + body
	}
	inner := "From: b@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=CC\n\n--CC\n" + att("a.zip", wrapped(big)) + "\n--CC--\n"
	tests := []struct {
		name string
		msg  string
		cut  []string // paths cut; none: no skeleton
	}{
		{"a large attachment", multipart(textPart, att("a.zip", wrapped(big))), []string{"2"}},
		{"two, and a small one left", multipart(textPart, att("a.zip", wrapped(big)), att("s.zip", wrapped("small")), att("b.zip", wrapped(big))), []string{"2", "4"}},
		{"a message whose body is one", "From: a@example.org\nMIME-Version: 1.0\n" + att("a.zip", wrapped(big)), []string{"1"}},
		{"in an attached message", multipart(textPart, "Content-Type: message/rfc822\n\n"+inner), []string{"2/1"}},
		{"large text is kept for clamd's mail checks", multipart("Content-Type: text/html\nContent-Transfer-Encoding: base64\n\n" + wrapped(big)), nil},
		{"and an attached HTML file", multipart(textPart, "Content-Type: text/html\nContent-Disposition: attachment; filename=\"p.html\"\nContent-Transfer-Encoding: base64\n\n"+wrapped(big)), nil},
		{"a line that could be a boundary", multipart(textPart, att("a.zip", wrapped(big[:10<<10])+"\n--BBX\nContent-Type: text/plain\n\nhidden\n"+wrapped(big[10<<10:]))), nil},
		{"a character outside the alphabet", multipart(textPart, att("a.zip", wrapped(big)+"\n*")), nil},
		{"padding before the end", multipart(textPart, att("a.zip", wrapped(big[:9<<10+1])+"\n"+wrapped(big[9<<10+1:]))), nil},
		{"quoted-printable", multipart(textPart, strings.Replace(att("a.zip", wrapped(big)), "base64", "quoted-printable", 1)), nil},
		{"no closing boundary", strings.TrimSuffix(multipart(textPart, att("a.zip", wrapped(big))), "--BB--\n"), nil},
		{"a Content-Transfer-Encoding twice", multipart(textPart, "Content-Transfer-Encoding: 7bit\n"+att("a.zip", wrapped(big))), nil},
		{"transport padding after a delimiter", strings.Replace(multipart(textPart, att("a.zip", wrapped(big)), textPart), "\n--BB\nContent-Type: text/plain", "\n--BB\t\nContent-Type: text/plain", 1), nil},
		{"transport padding after the close delimiter", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "--BB--", "--BB-- ", 1), nil},
		{"transport padding in an attached message", multipart(textPart, "Content-Type: message/rfc822\n\n"+strings.Replace(inner, "--CC\n", "--CC \n", 1)), nil},
		{"a folded Content-Type with another parameter", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), `multipart/mixed; boundary="BB"`, "multipart/mixed;\n\tboundary=\"BB\"; charset=us-ascii", 1), []string{"2"}},
		{"a ';' after the boundary", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), `boundary="BB"`, `boundary="BB";`, 1), nil},
		{"the boundary in RFC 2231 pieces", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), `boundary="BB"`, `boundary*0="B"; boundary*1="B"`, 1), nil},
		{"boundary= in another parameter", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), `boundary="BB"`, `x="boundary=CC"; boundary="BB"`, 1), nil},
		{"a bare CR in the message header", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "Subject: t\n", "Subject: t\nX-A: b\r\rc\n", 1), nil},
		{"a ';' in the boundary", strings.ReplaceAll(multipart(textPart, att("a.zip", wrapped(big))), "BB", "B;B"), nil},
		{"an encoded word as the boundary", strings.ReplaceAll(multipart(textPart, att("a.zip", wrapped(big))), "BB", "=?us-ascii?q?BB?="), nil},
		{"a field name with a comment", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "Subject: t\n", "Subject: t\nContent-Type(x): text/plain\n", 1), nil},
		{"a body that begins with Content", multipart(textPart, att("a.zip", "ContentA"+wrapped(big))), nil},
		{"a text that begins with Content", multipart("Content-Type: text/plain\n\nContents: none", att("a.zip", wrapped(big))), nil},
		{"a multipart/signed", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "multipart/mixed", "multipart/signed", 1), []string{"2"}},
		{"a multipart inside with the boundary '-' and this one", strings.Replace(multipart(textPart, "Content-Type: message/rfc822\n\n"+strings.ReplaceAll(inner, "CC", "-BB")), "", "", 1), nil},
		{"a multipart inside with this boundary in capitals", strings.ReplaceAll(multipart(textPart, "Content-Type: message/rfc822\n\n"+strings.ReplaceAll(inner, "CC", "Bb")), "BB", "bb"), nil},
		{"a header line of 999 bytes", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "Subject: t\n", "Subject: t\nX-Pad: "+strings.Repeat("a", 992)+"\n", 1), nil},
		{"a header line of 998 bytes", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "Subject: t\n", "Subject: t\nX-Pad: "+strings.Repeat("a", 991)+"\n", 1), []string{"2"}},
		{"a Content-Disposition ending in ';'", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "Subject: t\n", "Subject: t\nContent-Disposition: inline;\n", 1), nil},
		{"a quoted pair in a filename", strings.Replace(multipart(textPart, att("a.zip", wrapped(big))), "filename=\"a.zip\"", "filename=\"a\\\"b.zip\"", 1), nil},
		{"in a base64 attached message", multipart(textPart, "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n"+wrapped(crlf(inner))), nil},
	}
	// What the check reads eight bytes at a time must not hide a byte it
	// would refuse one at a time: a byte outside the alphabet, or padding
	// followed by more, at each place in a group of eight.
	body := wrapped(big)
	for off := 40; off < 48; off++ {
		for _, odd := range []string{"*", "\x00", " ", "\t", "=", "==A"} {
			tests = append(tests, struct {
				name string
				msg  string
				cut  []string
			}{fmt.Sprintf("%q at %d of the body", odd, off), multipart(textPart, att("a.zip", body[:off]+odd+body[off:])), nil})
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(crlf(tt.msg))
			s := New(Options{Name: "test"}, nil)
			ix, err := s.newIndex(bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			defer ix.close()
			sk := cutAttachments(ix, bytes.NewReader(raw), int64(len(raw)))
			if tt.cut == nil {
				if sk != nil {
					t.Fatalf("cut %v, want the message sent whole", sk.cut)
				}
				return
			}
			if sk == nil || len(sk.cut) != len(tt.cut) {
				t.Fatalf("skeleton %+v, want %v cut", sk, tt.cut)
			}
			// What is left: the raw message less each cut body, exactly.
			want := raw
			for _, p := range tt.cut {
				if !sk.cut[p] {
					t.Errorf("%s not cut; cut %v", p, sk.cut)
				}
				e := ix.m.Find(p)
				body := raw[e.BodyStart:e.End]
				i := bytes.Index(want, body)
				want = append(append([]byte(nil), want[:i]...), want[i+len(body):]...)
			}
			got, err := io.ReadAll(io.NewSectionReader(sk, 0, sk.size))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("skeleton (%v):\n%q\nwant\n%q", err, got, want)
			}
			// Every piece read at any offset is the same as read whole.
			for off := int64(0); off < sk.size; off += 97 {
				p := make([]byte, 500)
				n, err := sk.ReadAt(p, off)
				if !bytes.Equal(p[:n], got[off:min(off+500, sk.size)]) || (n < 500) != (err == io.EOF) {
					t.Fatalf("ReadAt(%d) = %d, %v: not the skeleton's bytes", off, n, err)
				}
			}
		})
	}
}

// BenchmarkPlainBase64: the check that a body may be cut, per byte of a
// 140 KB attachment body.
func BenchmarkPlainBase64(b *testing.B) {
	body := []byte(crlf(wrapped(randomText(100 << 10))))
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if !plainBase64(bytes.NewReader(body)) {
			b.Fatal("not plain")
		}
	}
}

// FuzzSkeleton: whatever the message, a skeleton is the message less
// exactly the bodies it names, each a leaf of the index that is an
// attachment of plain base64; reading it at any offset gives those bytes.
// Seeds are in testdata/fuzz/FuzzSkeleton.
func FuzzSkeleton(f *testing.F) {
	big := wrapped(strings.Repeat("\x00\x01binary\xff", 1<<10))
	att := "Content-Type: application/zip\nContent-Disposition: attachment; filename=\"a.zip\"\nContent-Transfer-Encoding: base64\n\n"
	f.Add([]byte(crlf(multipart(textPart, att+big))))
	f.Add([]byte(crlf(multipart(textPart, att+big, att+big))))
	f.Add([]byte(crlf("From: a@example.org\nMIME-Version: 1.0\n" + att + big)))
	f.Fuzz(func(t *testing.T, raw []byte) {
		s := New(Options{Name: "fuzz", MaxDepth: 8, MaxParts: 64}, nil)
		ix, err := s.newIndex(bytes.NewReader(raw), int64(len(raw)))
		if err != nil {
			return
		}
		defer ix.close()
		sk := cutAttachments(ix, bytes.NewReader(raw), int64(len(raw)))
		if sk == nil {
			return
		}
		var want []byte
		at := int64(0)
		var cut []string
		for p := range sk.cut {
			cut = append(cut, p)
		}
		// The cut leaves in message order.
		slices.SortFunc(cut, func(a, b string) int { return int(ix.m.Find(a).BodyStart - ix.m.Find(b).BodyStart) })
		for _, p := range cut {
			e := ix.m.Find(p)
			if e == nil || e.Decoded || !e.Attachment || e.TransferEncoding != "base64" || e.BodyStart < at || e.End > int64(len(raw)) {
				t.Fatalf("cut %q: %+v", p, e)
			}
			if !plainBase64(bytes.NewReader(raw[e.BodyStart:e.End])) {
				t.Fatalf("cut %q is not plain base64", p)
			}
			want = append(want, raw[at:e.BodyStart]...)
			at = e.End
		}
		want = append(want, raw[at:]...)
		got, err := io.ReadAll(io.NewSectionReader(sk, 0, sk.size))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("skeleton (%v) is not the message less its cut bodies", err)
		}
	})
}

// plainBase64Bytewise is plainBase64 as it was first written, a byte at a
// time: FuzzPlainBase64 holds the fast one to it.
func plainBase64Bytewise(b []byte) bool {
	padded := false
	for _, c := range b {
		switch b64Class[c] {
		case b64Letter:
			if padded {
				return false
			}
		case b64Pad:
			padded = true
		case b64Break:
		default:
			return false
		}
	}
	return true
}

// FuzzPlainBase64: plainBase64 gives the byte-at-a-time answer whatever the
// bytes and however the reader cuts them (whole, a byte a read, half of
// what is asked). Seeds are in testdata/fuzz/FuzzPlainBase64.
func FuzzPlainBase64(f *testing.F) {
	f.Add([]byte(crlf(wrapped(strings.Repeat("attachment", 40)))))
	f.Add([]byte("QUJDRA==\r\n"))
	f.Add([]byte("QUJDRA==\r\nQUJD\r\n"))   // data after the padding
	f.Add([]byte("QUJDRA=\r\n=\r\n"))       // padding across a line
	f.Add([]byte("QUJDRAQUJDRA\x00QUJDRA")) // a NUL in the middle of a group
	f.Add([]byte("QUJDRAQU JDRAQUJDRA"))    // a space
	f.Fuzz(func(t *testing.T, b []byte) {
		want := plainBase64Bytewise(b)
		for name, r := range map[string]io.Reader{
			"whole":    bytes.NewReader(b),
			"one-byte": iotest.OneByteReader(bytes.NewReader(b)),
			"half":     iotest.HalfReader(bytes.NewReader(b)),
		} {
			if got := plainBase64(r); got != want {
				t.Fatalf("%s: plainBase64(%q) = %v, want %v", name, b, got, want)
			}
		}
	})
}
