package strip

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

const eicarB64 = "WDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FSLVNUQU5EQVJELUFOVElWSVJVUy1URVNU\nLUZJTEUhJEgrSCo=\n"

var (
	partText = "Content-Type: text/plain\n\nHello,\nthe list.\n"
	partEvil = "Content-Type: application/octet-stream; name=\"evil.exe\"\n" +
		"Content-Disposition: attachment; filename=\"evil.exe\"\n" +
		"Content-Transfer-Encoding: base64\n\n" + eicarB64
	partPDF = "Content-Type: application/pdf; name=\"doc.pdf\"\n" +
		"Content-Disposition: attachment; filename=\"doc.pdf\"\n" +
		"Content-Transfer-Encoding: base64\n\nJVBERi0xLjQKJcOkw7zDtsOfCg==\n"
	partZip = "Content-Type: application/zip; name=\"invoice.zip\"\n" +
		"Content-Disposition: attachment; filename=\"invoice.zip\"\n" +
		"Content-Transfer-Encoding: base64\n\nUEsDBAoAAAAAAA==\n"
	partQP = "Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n<p>caf=C3=A9 =\nsoft break</p>\n"
)

const topHeader = "From: a@example.org\nTo: list@example.org\nSubject: test\nMIME-Version: 1.0\n"

// multi builds a multipart from raw parts; pad is the text after "--b"
// on each delimiter line (transport padding).
func multi(ctype, boundary, pad string, parts ...string) (header, body string) {
	header = "Content-Type: " + ctype + "; boundary=\"" + boundary + "\"\n"
	var b strings.Builder
	b.WriteString("This is a multi-part message in MIME format.\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + pad + "\n" + p)
	}
	b.WriteString("--" + boundary + "--" + pad + "\nepilogue\n")
	return header, b.String()
}

func mixed(boundary string, parts ...string) string {
	h, b := multi("multipart/mixed", boundary, "", parts...)
	return h + "\n" + b
}

func mail(ctype, body string) string {
	return topHeader + ctype + "\n" + body
}

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

func replPart(text, nl string) string {
	return "Content-Type: text/plain; charset=utf-8" + nl + "Content-Transfer-Encoding: 8bit" + nl +
		"Content-Disposition: inline" + nl + nl + text + nl
}

func bodyOf(msg string) string {
	if i := strings.Index(msg, "\r\n\r\n"); i >= 0 {
		return msg[i+4:]
	}
	return msg[strings.Index(msg, "\n\n")+2:]
}

func run(msg string, removals []Removal) (string, Result, error) {
	var out bytes.Buffer
	res, err := Body(strings.NewReader(msg), int64(len(msg)), removals, DefaultReplacement, &out)
	return out.String(), res, err
}

func TestBody(t *testing.T) {
	hThree, bThree := multi("multipart/mixed", "b1", "", partText, partEvil, partPDF)
	three := mail(hThree, bThree)
	hPad, bPad := multi("multipart/mixed", "b1", " \t ", partText, partEvil, partPDF)
	padded := mail(hPad, bPad)
	// multipart/alternative beside a nested multipart/mixed.
	hAlt, bAlt := multi("multipart/alternative", "alt", "", partText, partQP)
	hIn, bIn := multi("multipart/mixed", "inner", "", partPDF, partEvil)
	hNest, bNest := multi("multipart/mixed", "outer", "", hAlt+"\n"+bAlt, hIn+"\n"+bIn, partZip)
	nested := mail(hNest, bNest)
	// An attached message (message/rfc822 at 2) with two parts: 2/1, 2/2.
	inner := "From: b@example.org\nSubject: fwd\nMIME-Version: 1.0\n" + mixed("in822", partText, partEvil)
	h822, b822 := multi("multipart/mixed", "b1", "", partText, "Content-Type: message/rfc822\n\n"+inner)
	rfc822 := mail(h822, b822)
	// An attached single-part message: its body is 2/1.
	single := "From: b@example.org\nSubject: fwd\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n" + eicarB64
	attached := "Content-Type: message/rfc822\nContent-Disposition: attachment\n\n" + single
	hS, bS := multi("multipart/mixed", "b1", "", partText, attached)
	rfc822Single := mail(hS, bS)

	evil := Removal{Path: "2", FileName: "evil.exe", Threat: "Eicar-Test-Signature"}
	tests := []struct {
		name    string
		msg     string
		lf      bool // keep the message's bare LF line endings
		remove  []Removal
		want    []Removal // as reported in Result.Removed
		old     []string  // raw parts (as in msg before crlf) replaced, in order
		rfc822  bool      // the change is inside an attached message go-message does not walk
		bound   string    // top boundary, to compare the raw parts between boundaries
		replIdx []int     // top-level parts (from 0) that are replaced
	}{
		{name: "second of three", msg: three, remove: []Removal{evil}, want: []Removal{evil},
			old: []string{partEvil}, bound: "b1", replIdx: []int{1}},
		{name: "second of three, LF only", msg: three, lf: true, remove: []Removal{evil}, want: []Removal{evil},
			old: []string{partEvil}, bound: "b1", replIdx: []int{1}},
		{name: "transport padding", msg: padded, remove: []Removal{evil}, want: []Removal{evil},
			old: []string{partEvil}, bound: "b1", replIdx: []int{1}},
		{name: "transport padding, LF only", msg: padded, lf: true, remove: []Removal{evil}, want: []Removal{evil},
			old: []string{partEvil}, bound: "b1", replIdx: []int{1}},
		{name: "nested in multipart/mixed beside alternative", msg: nested,
			remove: []Removal{{Path: "2/2", FileName: "evil.exe", Threat: "Eicar"}},
			want:   []Removal{{Path: "2/2", FileName: "evil.exe", Threat: "Eicar"}},
			old:    []string{partEvil}},
		{name: "two removals at different depths", msg: nested,
			remove: []Removal{{Path: "3", FileName: "invoice.zip", Threat: "T1"}, {Path: "2/2", Threat: "T2"}},
			want:   []Removal{{Path: "2/2", Threat: "T2"}, {Path: "3", FileName: "invoice.zip", Threat: "T1"}},
			old:    []string{partEvil, partZip}},
		{name: "two removals in one multipart, duplicate finding", msg: three,
			remove: []Removal{{Path: "3", Threat: "T3"}, {Path: "1", Threat: "T1"}, {Path: "3", FileName: "doc.pdf", Threat: "other"}},
			want:   []Removal{{Path: "1", Threat: "T1"}, {Path: "3", FileName: "doc.pdf", Threat: "T3"}},
			old:    []string{partText, partPDF}, bound: "b1", replIdx: []int{0, 2}},
		{name: "archive member path", msg: nested,
			remove: []Removal{{Path: "3/invoice.zip/doc.exe", FileName: "invoice.zip", Threat: "Eicar"}},
			want:   []Removal{{Path: "3", FileName: "invoice.zip", Threat: "Eicar"}},
			old:    []string{partZip}},
		{name: "part inside a removed part", msg: nested,
			remove: []Removal{{Path: "2/2", Threat: "inner"}, {Path: "2", Threat: "outer"}},
			want:   []Removal{{Path: "2", Threat: "outer"}},
			old:    []string{hIn + "\n" + bIn}},
		{name: "inside an attached message", msg: rfc822, rfc822: true,
			remove: []Removal{{Path: "2/2", FileName: "evil.exe", Threat: "Eicar"}},
			want:   []Removal{{Path: "2/2", FileName: "evil.exe", Threat: "Eicar"}},
			old:    []string{partEvil}},
		{name: "inside an attached message, LF only", msg: rfc822, rfc822: true, lf: true,
			remove: []Removal{{Path: "2/2", FileName: "evil.exe", Threat: "Eicar"}},
			want:   []Removal{{Path: "2/2", FileName: "evil.exe", Threat: "Eicar"}},
			old:    []string{partEvil}},
		{name: "body of an attached single-part message", msg: rfc822Single,
			remove: []Removal{{Path: "2/1", Threat: "Eicar"}},
			want:   []Removal{{Path: "2", Threat: "Eicar"}},
			old:    []string{attached}, bound: "b1", replIdx: []int{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg, nl := crlf(tc.msg), "\r\n"
			if tc.lf {
				msg, nl = tc.msg, "\n"
			}
			out, res, err := run(msg, tc.remove)
			if err != nil {
				t.Fatalf("Body: %v", err)
			}
			if fmt.Sprint(res.Removed) != fmt.Sprint(tc.want) {
				t.Errorf("Removed = %v, want %v", res.Removed, tc.want)
			}
			want := bodyOf(msg)
			for i, old := range tc.old {
				if !tc.lf {
					old = crlf(old)
				}
				if !strings.Contains(want, old) {
					t.Fatalf("test bug: %q not in the message", old)
				}
				want = strings.Replace(want, old, replPart(DefaultReplacement(tc.want[i]), nl), 1)
			}
			if out != want {
				t.Fatalf("body:\n%s\nwant:\n%s", out, want)
			}
			if tc.bound != "" {
				compareRawParts(t, bodyOf(msg), out, tc.bound, tc.replIdx)
			}
			compareDecoded(t, msg, msg[:len(msg)-len(bodyOf(msg))]+out, tc.want, tc.rfc822)
		})
	}
}

// rawParts splits a body at the delimiter lines of boundary: the raw bytes
// of each part between them.
func rawParts(body, boundary string) []string {
	var parts []string
	var cur *strings.Builder
	for line := range strings.Lines(body) {
		t := strings.TrimRight(line, " \t\r\n")
		if t == "--"+boundary || t == "--"+boundary+"--" {
			if cur != nil {
				parts = append(parts, cur.String())
			}
			cur = &strings.Builder{}
			if t != "--"+boundary {
				break
			}
			continue
		}
		if cur != nil {
			cur.WriteString(line)
		}
	}
	return parts
}

func compareRawParts(t *testing.T, in, out, boundary string, replaced []int) {
	t.Helper()
	ip, op := rawParts(in, boundary), rawParts(out, boundary)
	if len(ip) != len(op) {
		t.Fatalf("%d parts in, %d out", len(ip), len(op))
	}
	for i := range ip {
		isRepl := false
		for _, r := range replaced {
			isRepl = isRepl || r == i
		}
		if isRepl == (ip[i] == op[i]) {
			t.Errorf("part %d: replaced %v, but in %q, out %q", i+1, isRepl, ip[i], op[i])
		}
	}
}

type leaf struct {
	ctype string
	body  string
}

// leaves reads a message with go-message: its decoded leaf parts by path.
func leaves(t *testing.T, msg string) map[string]leaf {
	t.Helper()
	e, err := message.Read(strings.NewReader(msg))
	if err != nil {
		t.Fatalf("go-message: %v", err)
	}
	got := map[string]leaf{}
	err = e.Walk(func(path []int, e *message.Entity, err error) error {
		if err != nil {
			return err
		}
		if e.MultipartReader() != nil {
			return nil
		}
		b, err := io.ReadAll(e.Body)
		if err != nil {
			return err
		}
		ct, _, _ := e.Header.ContentType()
		got[fmt.Sprint(path)] = leaf{ct, string(b)}
		return nil
	})
	if err != nil {
		t.Fatalf("go-message walk: %v", err)
	}
	return got
}

// compareDecoded checks that go-message reads the output, every part is
// decoded as before, and the replaced ones read as their text.
func compareDecoded(t *testing.T, in, out string, removed []Removal, rfc822 bool) {
	t.Helper()
	before, after := leaves(t, in), leaves(t, out)
	texts := map[string]bool{}
	for _, r := range removed {
		texts[DefaultReplacement(r)] = true
	}
	replaced := 0
	for path, l := range after {
		if l == before[path] {
			continue
		}
		if l.ctype == "text/plain" && texts[l.body] {
			replaced++
			continue
		}
		if !rfc822 || l.ctype != "message/rfc822" {
			t.Errorf("part %s changed: %q, was %q", path, l.body, before[path].body)
			continue
		}
		// go-message does not descend into an attached message: read it.
		for _, il := range leaves(t, l.body) {
			if il.ctype == "text/plain" && texts[il.body] {
				replaced++
			}
		}
	}
	if replaced != len(removed) {
		t.Errorf("%d parts read back as the replacement text, want %d", replaced, len(removed))
	}
}

func TestBodyCannotStrip(t *testing.T) {
	hThree, bThree := multi("multipart/mixed", "b1", "", partText, partEvil, partPDF)
	three := mail(hThree, bThree)
	signed := mail("Content-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256; boundary=\"s\"\n",
		"--s\n"+mixed("m", partText, partEvil)+"--s\nContent-Type: application/pkcs7-signature\n\nAAAA\n--s--\n")
	hNest, bNest := multi("multipart/mixed", "o", "", partText,
		"Content-Type: multipart/signed; protocol=\"application/pgp-signature\"; boundary=\"s\"\n\n--s\n"+partEvil+"--s\nContent-Type: application/pgp-signature\n\nsig\n--s--\n")
	encoded822 := "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nRnJvbTogYgoKaGk=\n"
	h822, b822 := multi("multipart/mixed", "b1", "", partText, encoded822)
	hPlain, bPlain := multi("multipart/mixed", "b1", "", partText, partEvil)

	tests := []struct {
		name   string
		msg    string
		lf     bool
		remove []Removal
	}{
		{"single-part message", mail("Content-Type: text/plain\n", "hello\n"), false, []Removal{{Path: "1"}}},
		{"single-part message, archive member", mail("Content-Type: application/zip\n", "UEsD\n"), false, []Removal{{Path: "1/a.zip/x.exe"}}},
		{"no Content-Type", topHeader + "\nhello\n", false, []Removal{{Path: "1"}}},
		{"whole message", three, false, []Removal{{Path: "0"}}},
		{"empty path", three, false, []Removal{{Path: ""}}},
		{"no removals", three, false, nil},
		{"multipart/signed top level", signed, false, []Removal{{Path: "1/2"}}},
		{"multipart/signed on the way", mail(hNest, bNest), false, []Removal{{Path: "2/1"}}},
		{"encrypted top level", mail("Content-Type: application/pkcs7-mime; smime-type=enveloped-data\n", "AAAA\n"), false, []Removal{{Path: "1"}}},
		{"path not found", three, false, []Removal{{Path: "5"}}},
		{"path below a leaf", three, false, []Removal{{Path: "2/1"}}},
		{"one of two not found", three, false, []Removal{{Path: "2"}, {Path: "4"}}},
		{"missing close delimiter", mail(hThree, strings.TrimSuffix(bThree, "--b1--\nepilogue\n")), false, []Removal{{Path: "3"}}},
		{"missing close delimiter, LF", mail(hThree, strings.TrimSuffix(bThree, "--b1--\nepilogue\n")), true, []Removal{{Path: "3"}}},
		{"no boundary parameter", mail("Content-Type: multipart/mixed\n", bThree), false, []Removal{{Path: "2"}}},
		{"no delimiter at all", mail(hThree, "just text\n"), false, []Removal{{Path: "1"}}},
		{"encoded attached message", mail(h822, b822), false, []Removal{{Path: "2/1"}}},
		{"garbage after boundary", mail(hThree, strings.Replace(bThree, "--b1\n", "--b1 x\n", 2)), false, []Removal{{Path: "1"}}},
		{"mixed line endings at boundaries", mail(hPlain, strings.Replace(crlf(bPlain), "--b1\r\n", "--b1\n", 2)), true, []Removal{{Path: "1"}}},
		{"part header runs into boundary", mail(hThree, strings.Replace(bThree, "Content-Type: text/plain\n\n", "Content-Type: text/plain\n", 1)), false, []Removal{{Path: "1/2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			msg := tc.msg
			if !tc.lf {
				msg = crlf(msg)
			}
			_, _, err := run(msg, tc.remove)
			if !errors.Is(err, ErrCannotStrip) {
				t.Fatalf("err = %v, want ErrCannotStrip", err)
			}
			t.Log(err)
		})
	}
}

// TestLongLines: a line of any length is copied whole; strip cuts by the
// index's offsets and holds no line in memory.
func TestLongLines(t *testing.T) {
	for _, n := range []int{200 << 10, 1<<20 + 10} {
		long := strings.Repeat("B", n) + "\n"
		msg := crlf(mail("Content-Type: multipart/mixed; boundary=b\n", "--b\n"+partText+long+"--b\n"+partEvil+long+"--b--\n"))
		for _, remove := range []string{"1", "2"} {
			out, _, err := run(msg, []Removal{{Path: remove}})
			if err != nil || !strings.Contains(out, crlf(long)) {
				t.Fatalf("line of %d, removing %s: err = %v; long line kept: %v", n, remove, err, strings.Contains(out, crlf(long)))
			}
		}
	}
}

func TestDefaultReplacement(t *testing.T) {
	tests := []struct {
		r    Removal
		want string
	}{
		{Removal{FileName: "a.exe", Threat: "Eicar"}, "The attachment 'a.exe' was removed because it contained the virus 'Eicar'."},
		{Removal{Threat: "Eicar"}, "An attachment was removed because it contained the virus 'Eicar'."},
		{Removal{FileName: "a.exe"}, "The attachment 'a.exe' was removed because it contained a virus."},
		{Removal{}, "An attachment was removed because it contained a virus."},
		{Removal{FileName: "setup.exe", Kind: "banned-name"}, "The attachment 'setup.exe' was removed because files of its type are not accepted here."},
		{Removal{FileName: "plan.zip", Kind: "encrypted", Threat: "Heuristics.Encrypted.Zip"}, "The attachment 'plan.zip' was removed because it is encrypted, so it could not be checked for viruses."},
		{Removal{FileName: "deep.zip", Kind: "limit-exceeded"}, "The attachment 'deep.zip' was removed because it could not be checked for viruses."},
		{Removal{FileName: "a\r\n--b\x00.exe", Threat: "T\xff"}, "The attachment 'a  --b?.exe' was removed because it contained the virus 'T?'."},
		{Removal{FileName: strings.Repeat("x", 300)}, "The attachment '" + strings.Repeat("x", 200) + "…' was removed because it contained a virus."},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if got := DefaultReplacement(tc.r); got != tc.want {
				t.Errorf("got %q", got)
			}
		})
	}
}

func TestReplacementTemplate(t *testing.T) {
	msg := crlf(mail("Content-Type: multipart/mixed; boundary=b\n", "--b\n"+partText+"--b\n"+partEvil+"--b--\n"))
	var out bytes.Buffer
	_, err := Body(strings.NewReader(msg), int64(len(msg)), []Removal{{Path: "2"}}, func(Removal) string {
		return "Removed.\n--b--\nbye\x00\r"
	}, &out)
	if err != nil {
		t.Fatal(err)
	}
	want := "Removed.\r\n --b--\r\nbye\r\n\r\n--b--\r\n"
	if !strings.HasSuffix(out.String(), want) {
		t.Fatalf("body ends %q, want %q", out.String(), want)
	}
}
