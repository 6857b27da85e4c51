package scanner

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/textenc/textenctest"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// TestAttackEmbeddedClamdMisses: files encoded in a text that clamd's
// mail parser does not decode although the walk (and mail readers) do: a
// uuencode begin line with a mode of four digits or one, uuencode in a
// base64 or quoted-printable text after a line of text, BinHex after a
// line of text. Before the fix the scanner held uuencode and BinHex to be
// covered by clamd's raw scan, did not send the file, and the message was
// clean.
func TestAttackEmbeddedClamdMisses(t *testing.T) {
	client := startClamd(t)
	eicar := string(harness.EICAR())
	uu := func(mode string) string {
		return "begin " + mode + " e.com\n" + textenctest.Uuencode([]byte(eicar)) + "`\nend\n"
	}
	binhex := "(This file must be converted with BinHex 4.0)\n" + textenctest.BinHex("e.com", eicar, false) + "\n"
	text := func(cte, body string) string {
		switch cte {
		case "base64":
			body = wrapped(body)
		case "quoted-printable":
			body = strings.ReplaceAll(body, "=", "=3D")
		}
		return multipart(textPart, "Content-Type: text/plain\nContent-Transfer-Encoding: "+cte+"\n\n"+body)
	}
	tests := []struct{ name, msg string }{
		{"uuencode, mode 0644", text("7bit", uu("0644"))},
		{"uuencode, mode 7", text("7bit", uu("7"))},
		{"uuencode after a line, base64", text("base64", "hello\n"+uu("644"))},
		{"uuencode, quoted-printable", text("quoted-printable", uu("644"))},
		{"BinHex after a line", text("7bit", "hello\n"+binhex)},
		{"BinHex after a line, base64", text("base64", "hello\n"+binhex)},
		{"uuencode in a large base64 text attachment", multipart(textPart, "Content-Type: text/plain; name=\"notes.txt\"\nContent-Disposition: attachment\nContent-Transfer-Encoding: base64\n\n"+
			wrapped(strings.Repeat("Lorem ipsum dolor sit amet.\n", 400)+uu("644")))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(crlf(tt.msg))
			res, err := client.Scan(context.Background(), bytes.NewReader(raw))
			if err != nil || res.Found {
				t.Fatalf("clamd alone finds it (%+v, %v): not a case of clamd missing it", res, err)
			}
			v, err := New(Options{Name: "test"}, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			f, ok := v.First(verdict.Infected)
			if !ok || f.Path != "2/e.com" {
				t.Errorf("first infected %+v (%v), want EICAR at 2/e.com; status %s, findings %+v", f, ok, v.Status, v.Findings)
			}
		})
	}
}
