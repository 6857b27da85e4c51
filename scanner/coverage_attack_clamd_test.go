package scanner

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"encoding/binary"
	"hash/crc32"

	"context"
	"fmt"

	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/scanner/textenc/textenctest"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// everyPart hides an engine's MailUnpacker: the scanner sends it every
// part and member, the reference raw-first detection must not fall below.
type everyPart struct{ Engine }

// TestClamdCoverageAttacks: messages an outside sender can shape so that
// the scanner's walk and clamd's own mail parser read them apart
// differently. For each, with a real clamd at its default limits: what
// clamd finds in the raw message alone (asserted, as in
// TestClamdCoverage), and that the scanner in station mode with default
// options finds EICAR wherever sending clamd every part finds it. A case
// where clamd misses EICAR raw and the scanner does too, while every part
// sent finds it, is a raw-first bypass.
func TestClamdCoverageAttacks(t *testing.T) {
	client := startClamd(t)
	eicar := string(harness.EICAR())
	e64 := b64(eicar)
	hdr := "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n"
	att := func(cte, body string) string {
		return "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.com\"\nContent-Transfer-Encoding: " + cte + "\n\n" + body
	}
	mp := func(parts ...string) string { return crlf(multipart(append([]string{textPart}, parts...)...)) }
	withBB := func(ct string) string {
		return crlf(hdr + "Content-Type: " + ct + "\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n")
	}
	single := "Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + e64
	rfc64 := func(inner string) string {
		return "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\n" + b64(crlf(inner))
	}
	tests := []struct {
		name     string
		msg      string // sent as it is: crlf() where wanted
		rawFinds bool
		path     string // of the first infected finding; "" when nothing finds it
	}{
		// Base64 that decoders read differently.
		{"base64 with junk characters", mp(att("base64", e64[:20]+"!!**"+e64[20:])), true, ""},
		{"base64 without its padding", mp(att("base64", strings.TrimRight(e64, "="))), true, ""},
		{"base64 in groups of 4 with spaces", mp(att("base64", spacedEvery(e64, 4))), true, ""},
		{"base64 one character a line", mp(att("base64", linesOf(e64, 1))), true, ""},
		{"base64 in one 12k line", mp(att("base64", b64(eicar+strings.Repeat(" ", 9000)))), true, ""},
		// A padded group before the data: both decoders stop there.
		{"base64 padding before the data", mp(att("base64", b64("AB")+e64)), false, ""},
		{"quoted-printable, every byte encoded", mp(att("quoted-printable", qpAll(eicar))), true, "2"},
		// Transfer encodings a reader may or may not honour.
		{"Content-Transfer-Encoding BASE64", mp(att("BASE64", e64)), true, "2"},
		{"Content-Transfer-Encoding with a comment", mp(att("base64 (comment)", e64)), true, ""},
		{"Content-Transfer-Encoding x-uuencode", mp(att("x-uuencode", uuencodeText("e.com", eicar))), true, ""},
		{"Content-Transfer-Encoding 8bit on base64", mp(att("8bit", e64)), false, ""},
		{"Content-Transfer-Encoding twice", mp("Content-Type: application/octet-stream\nContent-Transfer-Encoding: 7bit\nContent-Transfer-Encoding: base64\n\n" + e64), true, ""},
		// Multipart boundaries.
		{"boundary with spaces", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"a b\"\n\n--a b\n" + textPart + "\n--a b\n" + attachment("e.com", eicar) + "\n--a b--\n"), true, ""},
		{"boundary a prefix of the inner one", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"ab\"\n\n--ab\nContent-Type: multipart/mixed; boundary=\"abc\"\n\n--abc\n" + attachment("e.com", eicar) + "\n--abc--\n\n--ab--\n"), true, ""},
		{"no close delimiter", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n"), true, ""},
		{"attachment in the epilogue", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB--\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n"), true, ""},
		{"LF line ends", multipart(textPart, attachment("e.com", eicar)), true, "2"},
		{"CR line ends", strings.ReplaceAll(multipart(textPart, attachment("e.com", eicar)), "\n", "\r"), false, ""},
		{"Content-Type folded", withBB("multipart/mixed;\n\tboundary=\n \"BB\""), true, "2"},
		{"boundary twice", withBB("multipart/mixed; boundary=\"AA\"; boundary=\"BB\""), true, ""},
		{"boundary in RFC 2231 form", withBB("multipart/mixed; boundary*0=\"B\"; boundary*1=\"B\""), true, ""},
		{"Content-Type twice", crlf(hdr + "Content-Type: text/plain\n" + strings.TrimPrefix(withBB("multipart/mixed; boundary=\"BB\""), crlf(hdr))), true, ""},
		{"part header without a blank line", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n" + e64 + "\n--BB--\n"), false, ""},
		{"delimiters with trailing white space", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB \t\n" + textPart + "\n--BB  \n" + attachment("e.com", eicar) + "\n--BB-- \n"), true, ""},
		{"boundary with a quoted-pair, delimiter unescaped", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"x\\\\y\"\n\n--xy\n" + textPart + "\n--xy\n" + attachment("e.com", eicar) + "\n--xy--\n"), true, ""},
		{"boundary with a quoted-pair, delimiter as written", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"x\\\\y\"\n\n--x\\y\n" + textPart + "\n--x\\y\n" + attachment("e.com", eicar) + "\n--x\\y--\n"), true, ""},
		{"boundary case differs from delimiters", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"bb\"\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n"), true, ""},
		{"header line of white space in the fold", crlf(hdr + "Content-Type: multipart/mixed;\n \n boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n"), true, ""},
		{"lower-case header names", crlf(strings.ToLower(hdr) + "content-type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + strings.ToLower(textPart) + "\n--BB\ncontent-type: application/octet-stream\ncontent-transfer-encoding: base64\n\n" + e64 + "\n--BB--\n"), true, ""},
		{"boundary as an encoded word", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"=?utf-8?q?BB?=\"\n\n--BB\n" + textPart + "\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n"), true, ""},
		{"boundary with 8-bit bytes", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"\xe9\xe9\"\n\n--\xe9\xe9\n" + textPart + "\n--\xe9\xe9\n" + attachment("e.com", eicar) + "\n--\xe9\xe9--\n"), true, ""},
		{"NUL in a part header", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\nX-A: \x00\n" + attachment("e.com", eicar) + "\n--BB--\n"), true, ""},
		{"part header continued by a tab line", crlf(hdr + "Content-Type: multipart/mixed; boundary=\"BB\"\n\n--BB\n" + textPart + "\n--BB\nContent-Type: application/octet-stream\nContent-Transfer-Encoding:\n\tbase64\n\n" + e64 + "\n--BB--\n"), true, ""},
		{"base64 line of 1000 chars then padding junk", mp(att("base64", e64+"====\n"+e64)), true, ""},
		{"part body after a white-space line", mp("Content-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n \n" + e64), true, ""},
		{"part header ends with LF CR LF", strings.Replace(mp(att("base64", e64)), "base64\r\n\r\n", "base64\n\r\n", 1), true, ""},
		{"Content-Disposition inline, type application/x-msdownload", mp("Content-Type: application/x-msdownload; name=\"e.exe\"\nContent-Disposition: inline\nContent-Transfer-Encoding: base64\n\n" + e64), true, ""},
		{"part of type multipart without boundary", mp("Content-Type: multipart/mixed\nContent-Transfer-Encoding: base64\n\n" + e64), true, ""},
		{"message/partial", mp("Content-Type: message/partial; id=\"x\"; number=1; total=1\nContent-Transfer-Encoding: base64\n\n" + e64), true, ""},
		{"message/external-body with content", mp("Content-Type: message/external-body; access-type=x\n\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + e64), true, ""},
		// The walk does not open TNEF; clamd reads it raw.
		{"application/ms-tnef", mp("Content-Type: application/ms-tnef; name=\"winmail.dat\"\nContent-Transfer-Encoding: base64\n\n" + b64("\x78\x9f\x3e\x22"+eicar)), true, ""},
		// clamd tells mail by its first bytes.
		{"first header X-Foo", crlf("X-Foo: bar\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"first header DKIM-Signature", crlf("DKIM-Signature: v=1; a=rsa-sha256; d=example.org\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"first header ARC-Seal", crlf("ARC-Seal: i=1; a=rsa-sha256\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"first header Message-ID", crlf("Message-ID: <a@b>\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"first header folded", crlf("X-Foo:\n bar\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"only Content-Type, MIME-Version last", crlf("Content-Type: multipart/mixed; boundary=\"BB\"\nMIME-Version: 1.0\n\n--BB\n" + attachment("e.com", eicar) + "\n--BB--\n"), true, ""},
		{"first header in upper case", crlf(strings.ToUpper("x-foo: bar\n") + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"first line From_ envelope", crlf("From a@example.org Tue Dec  1 10:00:00 2026\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"UTF-8 BOM first", crlf("\xef\xbb\xbf" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		{"blank line first", crlf("\n" + multipart(textPart, attachment("e.com", eicar))), true, ""},
		// Attached messages. clamd 1.4.6 does not decode a
		// transfer-encoded message/rfc822 that is the message's body.
		{"message/rfc822 part in base64", mp(rfc64(multipart(textPart, attachment("e.com", eicar)))), true, "2/2"},
		{"message/rfc822 part in quoted-printable", mp("Content-Type: message/rfc822\nContent-Transfer-Encoding: quoted-printable\n\n" + qpAll(crlf(multipart(textPart, attachment("e.com", eicar))))), true, "2/2"},
		{"message body a base64 message/rfc822", crlf(hdr + rfc64(hdr+single)), false, "1/1"},
		{"base64 message/rfc822 in base64 message/rfc822", crlf(hdr + rfc64(hdr+rfc64(hdr+single))), false, "1/1/1"},
		{"base64 message/rfc822 part of a single message", mp(rfc64(hdr + single)), true, "2/1"},
		// Text encodings inside a transfer encoding.
		{"uuencode in a base64 text part", mp("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64(crlf(uuencodeText("e.com", eicar)))), true, "2/e.com"},
		{"uuencode in a quoted-printable text part", mp("Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\n" + qpAll(crlf(uuencodeText("e.com", eicar)))), true, "2/e.com"},
		{"BinHex in a base64 text part", mp("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64(crlf("(This file must be converted with BinHex 4.0)\n"+textenctest.BinHex("e.com", eicar, false)+"\n"))), true, "2/e.com"},
		{"uuencode in a text/html part", mp("Content-Type: text/html\n\n" + uuencodeText("e.com", eicar)), true, "2/e.com"},
		{"uuencode in a text/x-foo attachment", mp("Content-Type: text/x-foo\nContent-Disposition: attachment; filename=\"a.txt\"\n\n" + uuencodeText("e.com", eicar)), true, ""},
		{"uuencode in a text part of a zip", mp(attachment("t.zip", string(plainZip(t, "t.txt", uuencodeText("e.com", eicar))))), true, ""},
		{"multipart/digest part without a type", crlf(hdr + "Content-Type: multipart/digest; boundary=\"BB\"\n\n--BB\n\n" + multipart(textPart, attachment("e.com", eicar)) + "\n--BB--\n"), true, ""},
		{"multipart/digest part in base64", crlf(hdr + "Content-Type: multipart/digest; boundary=\"DD\"\n\n--DD\nContent-Transfer-Encoding: base64\n\n" + b64(crlf(multipart(textPart, attachment("e.com", eicar)))) + "\n--DD--\n"), true, ""},
		// Archives.
		{"gzip with name and comment", mp(attachment("e.gz", gzipFlags(t, eicar))), true, ""},
		{"tar with a long name", mp(attachment("e.tar", tarOf(t, strings.Repeat("d/", 80)+"e.com", eicar))), true, ""},
		{"tar, PAX header", mp(attachment("e.tar", tarPAX(t, eicar))), true, ""},
		{"zip with a duplicate name", mp(attachment("e.zip", zipDup(t, eicar))), true, ""},
		{"tar", mp(attachment("e.tar", tarOf(t, "e.com", eicar))), true, "2/e.tar/e.com"},
		{"gzip'd tar", mp(attachment("e.tgz", gzipOf(t, tarOf(t, "e.com", eicar)))), true, "2/e.tgz/data/e.com"},
		{"gzip of two members", mp(attachment("e.gz", gzipOf(t, "clean\n")+gzipOf(t, eicar))), true, "2/e.gz/data"},
		{"zip named .txt", mp(attachment("e.txt", string(plainZip(t, "e.com", eicar)))), true, "2/e.txt/e.com"},
		{"zip in a text/plain part", mp("Content-Type: text/plain\nContent-Transfer-Encoding: base64\n\n" + b64(string(plainZip(t, "e.com", eicar)))), true, "2/(zip)/e.com"},
		// A zip's local headers disagreeing with its central directory:
		// clamd goes by the local header, the walk by the directory.
		{"zip, local data-descriptor flag cleared", mp(attachment("e.zip", zipLocalPatched(t, eicar, false, 6, 0))), false, "2/e.zip/e.com"},
		{"zip, local method stored", mp(attachment("e.zip", zipLocalPatched(t, eicar, true, 8, 0))), false, "2/e.zip/e.com"},
		{"zip, local sizes 0", mp(attachment("e.zip", zipLocalPatched(t, eicar, true, 18, 0, 22, 0))), false, "2/e.zip/e.com"},
		// 7z coders: clamd has not all that 7-Zip (and the walk) has.
		{"7z, Delta filter", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=Delta:4", "-m1=LZMA"))), false, "2/e.7z/e.com"},
		{"7z, BCJ filter", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=BCJ", "-m1=LZMA"))), true, "2/e.7z/e.com"},
		{"7z, BCJ2 filter", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=BCJ2", "-m1=LZMA"))), false, "2/e.7z/e.com"},
		{"7z, ARM64 filter", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=ARM64", "-m1=LZMA2"))), true, "2/e.7z/e.com"},
		{"7z, ARM filter", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=ARM", "-m1=LZMA2"))), true, "2/e.7z/e.com"},
		{"7z, SPARC filter", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=SPARC", "-m1=LZMA2"))), true, "2/e.7z/e.com"},
		{"7z, PPMd", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-m0=PPMd"))), true, "2/e.7z/e.com"},
		{"7z, header not compressed", mp(attachment("e.7z", sevenZipArgs(t, "e.com", eicar, "-mhc=off"))), true, "2/e.7z/e.com"},
		{"zip made by 7z, zip64", mp(attachment("e.zip", sevenZipArgs(t, "e.com", eicar, "-tzip", "-mcu=on"))), true, "2/e.zip/e.com"},
		{"html with a base64 data: URI", mp("Content-Type: text/html\n\n<a href=\"data:application/octet-stream;base64," + e64 + "\">x</a>"), true, ""},
		{"300k header line", crlf(hdr + "X-Pad: " + strings.Repeat("a", 300000) + "\n" + strings.TrimPrefix(multipart(textPart, attachment("e.com", eicar)), "From: a@example.org\nSubject: t\nMIME-Version: 1.0\n")), true, ""},
	}
	// clamd stops at 16 levels of message/rfc822 parts; a message whose
	// body is a message it does not count as a level.
	for _, n := range []int{15, 16} {
		tests = append(tests, struct {
			name     string
			msg      string
			rawFinds bool
			path     string
		}{fmt.Sprintf("message/rfc822 nested %d deep", n), rfcNest(n, crlf(multipart(textPart, attachment("e.com", eicar))), func(m string) string { return "Content-Type: message/rfc822\n\n" + m }), n < 16, ""})
		tests = append(tests, struct {
			name     string
			msg      string
			rawFinds bool
			path     string
		}{fmt.Sprintf("bare message/rfc822 nested %d deep", n), rfcBare(n, hdr+single), true, ""})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCoverageAttack(t, client, Options{Name: "test"}, []byte(tt.msg), tt.rawFinds, tt.path)
		})
	}
}

// TestClamdCoverageAttackLimits: with a real clamd at small limits, and
// the station told them (Options.Clamd), content past them is found.
func TestClamdCoverageAttackLimits(t *testing.T) {
	lim := ClamdLimits{MaxRecursion: 6, MaxFiles: 40, MaxFileSize: 1 << 20, MaxScanSize: 3 << 20}
	cd := harness.StartClamdOpts(t, harness.ClamdOptions{Settings: map[string]string{
		"MaxRecursion": "6", "MaxFiles": "40", "MaxFileSize": "1M", "MaxScanSize": "3M"}})
	client, err := clamd.New(cd.Addr)
	if err != nil {
		t.Fatal(err)
	}
	eicar := string(harness.EICAR())
	zeros := strings.Repeat("\x00", 900<<10)
	// noise does not compress (max_ratio): a fixed xorshift sequence.
	noise := make([]byte, 900<<10)
	for i, x := 0, uint32(2463534242); i < len(noise); i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		noise[i] = byte(x)
	}
	zipOf := func(members ...string) string {
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		for i, m := range members {
			f, err := w.Create(fmt.Sprintf("m%d.com", i))
			if err != nil {
				t.Fatal(err)
			}
			f.Write([]byte(m))
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	nest := func(n int) string {
		z := eicar
		for i := range n {
			z = string(plainZip(t, fmt.Sprintf("level%d.zip", i), z))
		}
		return z
	}
	mp := func(name, content string) string { return crlf(multipart(textPart, attachment(name, content))) }
	tests := []struct {
		name     string
		msg      string
		rawFinds bool
		path     string
	}{
		{"within the limits", mp("e.zip", zipOf(zeros, eicar)), true, "2/e.zip/m1.com"},
		{"past MaxScanSize in a zip", mp("e.zip", zipOf(zeros, zeros, zeros, zeros, eicar)), false, "2/e.zip/m4.com"},
		// Larger than MaxFileSize: sent on its own, clamd skips it again
		// (no engine sees it; the station cannot do better with this clamd).
		{"a member past MaxFileSize", mp("e.zip", zipOf(string(noise)+string(noise[:200<<10])+eicar)), false, ""},
		{"past MaxFiles in a zip", mp("e.zip", zipOfN(t, 45, eicar)), false, "2/e.zip/last.com"},
		{"past MaxRecursion", mp("e.zip", nest(5)), false, "2/e.zip/level4.zip/level3.zip/level2.zip/level1.zip/level0.zip"},
		{"past MaxScanSize in a gzip'd tar", mp("e.tgz", gzipOf(t, tarMany(t, eicar, string(noise), zeros, zeros, zeros))), false, "2/e.tgz/data/f4.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkCoverageAttack(t, client, Options{Name: "test", MaxMembers: 1000, Clamd: lim}, []byte(tt.msg), tt.rawFinds, tt.path)
		})
	}
}

// tarMany is a tar of rest and then first, named f0.com, f1.com… in that
// order.
func tarMany(t *testing.T, first string, rest ...string) string {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	for i, d := range append(rest, first) {
		if err := w.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%d.com", i), Mode: 0o644, Size: int64(len(d))}); err != nil {
			t.Fatal(err)
		}
		w.Write([]byte(d))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// checkCoverageAttack asserts what clamd finds in raw alone, that the
// scanner finds EICAR wherever sending every part to clamd finds it, and
// where (path, when not "").
func checkCoverageAttack(t *testing.T, client *clamd.Client, opt Options, raw []byte, rawFinds bool, path string) {
	t.Helper()
	res, err := client.Scan(context.Background(), bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	if res.Found != rawFinds {
		t.Errorf("clamd alone finds EICAR in the raw message: %v (%q), want %v", res.Found, res.Raw, rawFinds)
	}
	v, err := New(opt, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	ref, err := New(opt, everyPart{Clamd(client)}).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	f, ok := v.First(verdict.Infected)
	rf, refOK := ref.First(verdict.Infected)
	if refOK && !ok {
		t.Fatalf("bypass: the scanner finds nothing (%s, findings %+v) where clamd sent every part finds %s at %s",
			v.Status, v.Findings, rf.Threat, rf.Path)
	}
	if ok && !strings.HasPrefix(f.Threat, harness.EicarSignature) {
		t.Errorf("first infected finding %+v, want EICAR", f)
	}
	if path != "" && (!ok || f.Path != path) {
		t.Errorf("first infected finding %+v (%v), want EICAR at %s; findings %+v", f, ok, path, v.Findings)
	}
	if rawFinds && !ok {
		t.Errorf("clamd finds EICAR raw but the verdict is %s", v.Status)
	}
}

// spacedEvery is s with a space after every n characters.
func spacedEvery(s string, n int) string {
	var b strings.Builder
	for i := 0; i < len(s); i += n {
		b.WriteString(s[i:min(i+n, len(s))] + " ")
	}
	return b.String()
}

// linesOf is s in lines of n characters.
func linesOf(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	return b.String() + s
}

// qpAll is s in quoted-printable with every byte as =XX, in lines of 20.
func qpAll(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "=%02X", s[i])
		if i%20 == 19 {
			b.WriteString("=\n")
		}
	}
	return b.String()
}

// tarOf is a ustar archive of one file.
func tarOf(t *testing.T, name, data string) string {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	if err := w.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(data))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// sevenZipArgs is an archive of one file made by 7z(1) with args (-tzip: a zip).
func sevenZipArgs(t *testing.T, name, data string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	out := "out.7z"
	if slices.Contains(args, "-tzip") {
		out = "out.zip"
	}
	cmd := exec.Command(harness.Program(t, "7z"), append(append([]string{"a", "-bd"}, args...), out, name)...)
	cmd.Dir = dir
	if o, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("7z %v: %v %s", args, err, o)
	}
	b, err := os.ReadFile(filepath.Join(dir, out))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// zipLocalPatched is a zip of e.com (deflated; sizes in the local header
// when sized, else in a data descriptor) with the local header's fields
// at the given offsets set: pairs of offset, value; 6 and 8 are 16 bits.
func zipLocalPatched(t *testing.T, data string, sized bool, fields ...uint32) string {
	t.Helper()
	var z []byte
	if !sized {
		z = plainZip(t, "e.com", data)
	} else {
		var c bytes.Buffer
		fw, _ := flate.NewWriter(&c, 9)
		fw.Write([]byte(data))
		fw.Close()
		var b bytes.Buffer
		w := zip.NewWriter(&b)
		f, err := w.CreateRaw(&zip.FileHeader{Name: "e.com", Method: zip.Deflate, CRC32: crc32.ChecksumIEEE([]byte(data)),
			CompressedSize64: uint64(c.Len()), UncompressedSize64: uint64(len(data))})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(c.Bytes())
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		z = b.Bytes()
	}
	for i := 0; i+1 < len(fields); i += 2 {
		off, v := fields[i], fields[i+1]
		switch off {
		case 6:
			binary.LittleEndian.PutUint16(z[6:], binary.LittleEndian.Uint16(z[6:])&^8) // the data-descriptor flag
		case 8:
			binary.LittleEndian.PutUint16(z[8:], uint16(v))
		default:
			binary.LittleEndian.PutUint32(z[off:], v)
		}
	}
	return string(z)
}

// gzipFlags is data gzipped with FNAME, FCOMMENT and FEXTRA set.
func gzipFlags(t *testing.T, data string) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Name, w.Comment, w.Extra = "e.com", "a comment", []byte("AB\x02\x00xy")
	w.Write([]byte(data))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// tarPAX is a tar of e.com with a PAX extended header.
func tarPAX(t *testing.T, data string) string {
	t.Helper()
	var b bytes.Buffer
	w := tar.NewWriter(&b)
	h := &tar.Header{Name: "e.com", Mode: 0o644, Size: int64(len(data)), Format: tar.FormatPAX, PAXRecords: map[string]string{"comment": "x"}}
	if err := w.WriteHeader(h); err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(data))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// zipDup is a zip of a clean e.com and then EICAR under the same name.
func zipDup(t *testing.T, data string) string {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, c := range []string{"clean", data} {
		f, err := w.Create("e.com")
		if err != nil {
			t.Fatal(err)
		}
		f.Write([]byte(c))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// rfcNest wraps inner n times in a message of a text part and wrap(inner).
func rfcNest(n int, inner string, wrap func(string) string) string {
	m := inner
	for i := range n {
		b := fmt.Sprintf("L%d", i)
		m = crlf("From: a@example.org\nMIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"" + b + "\"\n\n--" + b + "\n" + textPart + "\n--" + b + "\n" + wrap(m) + "\n--" + b + "--\n")
	}
	return m
}

// rfcBare wraps inner n times in a message whose body is message/rfc822.
func rfcBare(n int, inner string) string {
	m := inner
	for range n {
		m = "From: a@example.org\nMIME-Version: 1.0\nContent-Type: message/rfc822\n\n" + m
	}
	return crlf(m)
}
