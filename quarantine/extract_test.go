package quarantine

import (
	"bytes"
	"mime"
	"net/mail"
	"strings"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// The parts of the test message, each as it is between its delimiters.
var (
	p1  = "Content-Type: text/plain; charset=us-ascii\r\n\r\nHello list,\r\nsee attached.\r\n"
	p2  = "Content-Type: application/zip; name=\"x.zip\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment;\r\n filename=\"x.zip\"\r\n\r\nUEsDBAoAAAAAAOCYuCg8z1FoRAAAAEQAAAAJAAAAZWljYXIuY29t\r\nWDVPIVAlQEFQWzRcUFpYNTQoUF4pN0NDKTd9JEVJQ0FS"
	p31 = "Content-Type: text/plain\r\n\r\nplain"
	p32 = "Content-Type: text/html\r\n\r\n<p>html</p>\r\n"
	p3  = "Content-Type: multipart/alternative; boundary=\"alt\"\r\n\r\n--alt\r\n" + p31 + "\r\n--alt\r\n" + p32 + "\r\n--alt--"
	p41 = "Content-Type: text/plain\r\n\r\ninner text"
	p42 = "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=\"y.exe\"\r\n\r\nMZ\x90\x00binary\xff"
	p4  = "Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" +
		"From: mallory@example.net\r\nSubject: inner\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=inner\r\n\r\n" +
		"--inner\r\n" + p41 + "\r\n--inner\r\n" + p42 + "\r\n--inner--\r\n"
	p5       = "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeAoKeQo="
	testMIME = "From: Alice <alice@example.com>\r\nTo: dev-l@lists.example.org\r\nSubject: =?utf-8?q?R=C3=A9sum=C3=A9?=\r\n" +
		"Message-ID: <1@example.com>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed;\r\n boundary=\"outer\"\r\n\r\n" +
		"This is a preamble.\r\n--outer\r\n" + p1 + "\r\n--outer\r\n" + p2 + "\r\n--outer\r\n" + p3 +
		"\r\n--outer\r\n" + p4 + "\r\n--outer\r\n" + p5 + "\r\n--outer--  \r\nepilogue\r\n"
)

func TestExtractParts(t *testing.T) {
	whole := "Content-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"message.eml\"\r\n\r\n" + testMIME
	tests := []struct {
		name  string
		paths []string
		want  []string
	}{
		{"archive member", []string{"2/x.zip/eicar.com"}, []string{p2}},
		{"part", []string{"2"}, []string{p2}},
		{"nested", []string{"3/2"}, []string{p32}},
		{"in attached message", []string{"4/2"}, []string{p42}},
		{"attached message whole", []string{"4"}, []string{p4}},
		{"several, deduplicated, in order", []string{"4/2", "2/x.zip/a.exe", "1", "2/x.zip/b.exe"}, []string{p1, p2, p42}},
		{"ancestor and descendant", []string{"3/1", "3"}, []string{p3}},
		{"inside an encoded message: the part that holds it", []string{"5/1"}, []string{p5}},
		{"no such part: the whole message", []string{"9/1"}, []string{whole}},
		{"raw message", []string{""}, []string{whole}},
		{"raw message 0", []string{"0"}, []string{whole}},
	}
	for _, eol := range []string{"\r\n", "\n"} {
		conv := func(s string) string { return strings.ReplaceAll(s, "\r\n", eol) }
		for _, tt := range tests {
			t.Run(tt.name+map[string]string{"\r\n": " CRLF", "\n": " LF"}[eol], func(t *testing.T) {
				msg := conv(testMIME)
				var out bytes.Buffer
				if err := ExtractParts(strings.NewReader(msg), int64(len(msg)), tt.paths, &out); err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, w := range tt.want {
					if w == whole {
						w = strings.TrimSuffix(w, testMIME) + msg
					} else {
						w = conv(w)
					}
					want = append(want, w)
				}
				h, parts := splitExtract(t, out.Bytes())
				if got := h.Get("From"); got != "Alice <alice@example.com>" {
					t.Errorf("From %q", got)
				}
				subject, _ := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
				if subject != "Quarantined attachments of: Résumé" {
					t.Errorf("Subject %q", subject)
				}
				if len(parts) != len(want) {
					t.Fatalf("%d parts, want %d:\n%s", len(parts), len(want), out.Bytes())
				}
				for i := range want {
					if parts[i] != want[i] {
						t.Errorf("part %d\n%q\nwant\n%q", i, parts[i], want[i])
					}
				}
			})
		}
	}
}

func TestExtractSinglePart(t *testing.T) {
	msg := "Subject: one\r\nContent-Type: application/octet-stream\r\nX-Other: no\r\nContent-Transfer-Encoding:\r\n base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n"
	var out bytes.Buffer
	if err := ExtractParts(strings.NewReader(msg), int64(len(msg)), []string{"1"}, &out); err != nil {
		t.Fatal(err)
	}
	h, parts := splitExtract(t, out.Bytes())
	if h.Get("From") != "MAILER-DAEMON" {
		t.Errorf("From %q", h.Get("From"))
	}
	want := "Content-Type: application/octet-stream\r\nContent-Transfer-Encoding:\r\n base64\r\n\r\nTVqQAAMAAAAEAAAA\r\n"
	if len(parts) != 1 || parts[0] != want {
		t.Errorf("parts %q, want %q", parts, want)
	}
}

func TestExtractNoPaths(t *testing.T) {
	if err := ExtractParts(strings.NewReader(testMIME), int64(len(testMIME)), nil, new(bytes.Buffer)); err == nil {
		t.Error("ExtractParts without paths succeeded")
	}
}

func TestInfectedParts(t *testing.T) {
	v := &verdict.Verdict{}
	v.Add(verdict.Finding{Path: "2/x.zip/a.exe", Kind: verdict.KindVirus, Threat: "A"})
	v.Add(verdict.Finding{Path: "2/x.zip/b.exe", Kind: verdict.KindVirus, Threat: "B"})
	v.Add(verdict.Finding{Path: "3", Kind: verdict.KindEncrypted})
	v.Add(verdict.Finding{Path: "4/1", Kind: verdict.KindVirus, Threat: "C"})
	if got := strings.Join(InfectedParts(v), " "); got != "2 4/1" {
		t.Errorf("InfectedParts = %q", got)
	}
}

// splitExtract returns the header of an ExtractParts message and its parts
// as they are between the delimiters.
func splitExtract(t *testing.T, out []byte) (mail.Header, []string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		t.Fatalf("Content-Type %q", m.Header.Get("Content-Type"))
	}
	b := params["boundary"]
	body := string(out[bytes.Index(out, []byte("\r\n\r\n"))+4:])
	if !strings.HasPrefix(body, "--"+b+"\r\n") || !strings.HasSuffix(body, "\r\n--"+b+"--\r\n") {
		t.Fatalf("body not framed by the boundary:\n%s", body)
	}
	body = strings.TrimSuffix(strings.TrimPrefix(body, "--"+b+"\r\n"), "\r\n--"+b+"--\r\n")
	return m.Header, strings.Split(body, "\r\n--"+b+"\r\n")
}

func FuzzExtractParts(f *testing.F) {
	f.Add([]byte(testMIME), "4/2")
	f.Add([]byte(strings.ReplaceAll(testMIME, "\r\n", "\n")), "3/1")
	f.Add([]byte("Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n--b\r\n\r\n--b"), "2")
	f.Add([]byte("Content-Type: message/rfc822\r\n\r\nContent-Type: message/rfc822\r\n\r\nx"), "1/1/1")
	f.Fuzz(func(t *testing.T, msg []byte, path string) {
		var out bytes.Buffer
		if err := ExtractParts(bytes.NewReader(msg), int64(len(msg)), []string{path}, &out); err != nil {
			return
		}
		if len(out.Bytes()) < len("--") {
			t.Fatal("empty output")
		}
	})
}

// Lines longer than the reader's buffer (unwrapped base64) end where they
// end, whatever the line break.
func TestExtractLongLines(t *testing.T) {
	for _, n := range []int{64<<10 - 1, 64 << 10, 64<<10 + 1, 200 << 10} {
		for _, eol := range []string{"\r\n", "\n"} {
			long := "Content-Type: application/octet-stream" + eol + "Content-Transfer-Encoding: base64" + eol + eol + strings.Repeat("A", n)
			msg := "Subject: long" + eol + "Content-Type: multipart/mixed; boundary=b" + eol + eol +
				"--b" + eol + long + eol + "--b" + eol + p31 + eol + "--b--" + eol
			var out bytes.Buffer
			if err := ExtractParts(strings.NewReader(msg), int64(len(msg)), []string{"1"}, &out); err != nil {
				t.Fatal(err)
			}
			if _, parts := splitExtract(t, out.Bytes()); len(parts) != 1 || parts[0] != long {
				t.Errorf("line of %d with %q: part of %d bytes, want %d", n, eol, len(parts[0]), len(long))
			}
		}
	}
}
