package scanner

import (
	"bytes"
	"context"
	"encoding/base64"
	"regexp"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// misalignedBase64 is a base64 body, a whole number of quanta, that
// decodes to noise only, while the same body after the characters of
// prefix (which a reader takes for the first of the body) decodes to
// noise and EICAR.
func misalignedBase64(t *testing.T, prefix, noise string) string {
	t.Helper()
	eicar := string(harness.EICAR())
	p := len(prefix) % 4
	if p == 0 {
		t.Fatalf("prefix %q keeps the quanta aligned", prefix)
	}
	x := noise + eicar
	for len(x)%3 != 0 {
		x += "z"
	}
	body := strings.Repeat("A", 4-p) + base64.StdEncoding.EncodeToString([]byte(x)) + strings.Repeat("A", p)
	if dec, err := base64.StdEncoding.DecodeString(body); err != nil || bytes.Contains(dec, []byte(eicar)) {
		t.Fatalf("the body alone decodes (%v) to EICAR", err)
	}
	if dec := lenientBase64(prefix + body); !bytes.Contains(dec, []byte(eicar)) {
		t.Fatal("the body after the prefix does not decode to EICAR")
	}
	return body
}

// lines76 cuts an encoded body into lines of 76 characters.
func lines76(enc string) string {
	var b strings.Builder
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\n")
		enc = enc[76:]
	}
	return b.String() + enc
}

// lenientBase64 decodes as mail readers do: characters outside the
// alphabet dropped, a partial quantum at the end decoded as far as it
// goes.
func lenientBase64(s string) []byte {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if base64Alphabet[s[i]] && s[i] != '=' {
			b.WriteByte(s[i])
		}
	}
	f := b.String()
	if len(f)%4 == 1 {
		f = f[:len(f)-1]
	}
	dec, _ := base64.RawStdEncoding.DecodeString(f)
	return dec
}

// pythonHeaderEnd is where Python's email package (Mailman's parser)
// begins the body of a part: it splits lines at CR, LF and CRLF, and the
// header ends at the first line that is blank or not a header line by
// its headerRE (a name of printable characters right before the colon,
// or a continuation); a line that is not blank is the body's first.
var pythonHeaderRE = regexp.MustCompile(`^(From |[\x21-\x39\x3b-\x7e]*:|[\t ])`)

func pythonBody(part string) string {
	lines := regexp.MustCompile(`\r\n|\r|\n`).Split(part, -1)
	for i, l := range lines {
		if l == "" {
			return strings.Join(lines[i+1:], "\n")
		}
		if !pythonHeaderRE.MatchString(l) {
			return strings.Join(lines[i:], "\n")
		}
	}
	return ""
}

// TestAttackSkeletonHeaderLines: a base64 attachment whose header has a
// line that some readers take for the end of the header (a bare CR, a
// continuation of white space or a NUL; white space before a colon, for
// Python's email package), so that what they decode begins with the
// characters of the header's last lines: the body, cut out of what clamd
// is sent and decoded from its first character, is EICAR only to them.
// Before the fix clamd was sent the skeleton and the scan came back
// clean, where clamd sent the whole message (the scan before the
// skeleton) found EICAR; white space before the colon fooled that scan
// too, and Python's view finds EICAR. Now such a line in the header of a
// part with a transfer encoding is an unscannable anomaly (mimepart), so
// nothing is cut and the whole message is sent.
func TestAttackSkeletonHeaderLines(t *testing.T) {
	client := startClamd(t)
	noise := randomText(12 << 10)
	hdr := "Content-Type: application/octet-stream\nContent-Disposition: attachment; filename=\"e.bin\"\nContent-Transfer-Encoding: base64\n"
	tests := []struct {
		name, line, prefix string
		rawFinds, python   bool // clamd sent the whole message, Python's view find EICAR
	}{
		{"bare CR blank line", "X-A: b\r\rQUF\n", "QUF", true, true},
		{"continuation of white space", "X-A: b\n \n QUF\n", "QUF", true, false},
		{"continuation of a tab", "X-A: b\n\t\n QUF\n", "QUF", true, false},
		{"continuation of a NUL", "X-A: b\n \x00\n QUF\n", "QUF", true, false},
		{"white space before the colon", "X : QU\n", "XQU", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			part := hdr + tt.line + "\n" + lines76(misalignedBase64(t, tt.prefix, noise))
			raw := []byte(crlf(multipart(textPart, part)))
			res, err := client.Scan(context.Background(), bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if res.Found != tt.rawFinds {
				t.Errorf("clamd sent the whole message finds EICAR: %v, want %v", res.Found, tt.rawFinds)
			}
			if got := bytes.Contains(lenientBase64(pythonBody(crlf(part))), harness.EICAR()); got != tt.python {
				t.Errorf("Python's view decodes EICAR: %v, want %v", got, tt.python)
			}
			v, err := New(Options{Name: "test"}, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if v.Status == verdict.Clean {
				t.Fatalf("clean; findings %+v", v.Findings)
			}
			if tt.rawFinds && v.Status != verdict.Infected {
				t.Errorf("status %s, want infected (clamd finds EICAR in the whole message); findings %+v", v.Status, v.Findings)
			}
		})
	}
}
