package mimepart

import (
	"bufio"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// pythonCase is one header form of testdata/names/expected.json, with the
// names Python's email package reads from it (expected.py writes them).
type pythonCase struct {
	ID          string   `json:"id"`
	ContentType string   `json:"content_type"`
	Disposition *string  `json:"disposition"`
	Python      []string `json:"python"`
}

func readHeader(t testing.TB, raw string) textproto.Header {
	t.Helper()
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(raw + "\r\n")))
	if err != nil {
		t.Fatalf("header %q: %v", raw, err)
	}
	return h
}

// TestFileNamesPython: every name Python's email package reads from a
// header form (under the default and the compat32 policy) is among the
// names ParseHeader gives, so that no name a client shows escapes the
// extension rules. The expected names come from Python, not from here;
// regenerate them with testdata/names/expected.py.
func TestFileNamesPython(t *testing.T) {
	b, err := os.ReadFile("testdata/names/expected.json")
	if err != nil {
		t.Fatal(err)
	}
	var file struct{ Cases []pythonCase }
	if err := json.Unmarshal(b, &file); err != nil {
		t.Fatal(err)
	}
	if len(file.Cases) < 20 {
		t.Fatalf("%d header forms, want at least 20", len(file.Cases))
	}
	for _, tc := range file.Cases {
		t.Run(tc.ID, func(t *testing.T) {
			raw := "Content-Type: " + tc.ContentType + "\r\n"
			if tc.Disposition != nil {
				raw += "Content-Disposition: " + *tc.Disposition + "\r\n"
			}
			in := ParseHeader(readHeader(t, raw))
			if len(tc.Python) == 0 {
				t.Fatal("Python reads no name: not a useful form")
			}
			for _, want := range tc.Python {
				if !contains(in.FileNames, want) {
					t.Errorf("names %q lack %q (Python's)", in.FileNames, want)
				}
			}
			if in.FileName != in.FileNames[0] {
				t.Errorf("FileName %q is not the first of %q", in.FileName, in.FileNames)
			}
		})
	}
}

// TestHeaderProblems: the Content-* fields a reader has to guess at are
// problems (unscannable findings), and well-formed ones are not.
func TestHeaderProblems(t *testing.T) {
	tests := []struct {
		name, header string
		want         string // in the one problem; "" for none
	}{
		{"plain", "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n", ""},
		{"rfc2231 name", "Content-Type: application/octet-stream\r\nContent-Disposition: attachment; filename*=utf-8''%D1%84.exe\r\n", ""},
		{"two content types", "Content-Type: text/plain\r\nContent-Type: application/x-msdownload\r\n", "2 Content-Type fields"},
		{"two identical dispositions", "Content-Disposition: attachment\r\nContent-Disposition: attachment\r\n", "2 Content-Disposition fields"},
		{"two encodings", "Content-Transfer-Encoding: base64\r\nContent-Transfer-Encoding: 7bit\r\n", "2 Content-Transfer-Encoding fields"},
		{"two boundaries", "Content-Type: multipart/mixed; boundary=a; boundary=b\r\n", `two boundary values "a" and "b"`},
		{"same boundary twice", "Content-Type: multipart/mixed; boundary=a; boundary=\"a\"\r\n", ""},
		{"comment", "Content-Type: text/plain; charset=utf-8 (as sent)\r\n", ""},
		{"bad parameter", "Content-Type: text/plain; charset=utf-8 junk\r\n", "unparseable Content-Type"},
		{"junk disposition", "Content-Disposition: attachment; filename=\"setup.exe\"; x\r\n", "unparseable Content-Disposition"},
		{"no subtype", "Content-Type: application\r\n", "unparseable Content-Type"},
		{"encoding with junk", "Content-Transfer-Encoding: base64; x\r\n", "unparseable Content-Transfer-Encoding"},
		{"empty encoding", "Content-Transfer-Encoding: \r\n", "unparseable Content-Transfer-Encoding"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseHeader(readHeader(t, tc.header)).HeaderProblems
			switch {
			case tc.want == "" && len(got) != 0:
				t.Errorf("problems %q, want none", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("problems %q, want one with %q", got, tc.want)
			}
		})
	}
}

// TestHeaderProblemsIndexed: a header problem is an anomaly of the index,
// where the walk reports it, and the index still reads the parts.
func TestHeaderProblemsIndexed(t *testing.T) {
	msg := "Content-Type: multipart/mixed; boundary=a; boundary=b\r\n\r\n--a\r\n" +
		"Content-Type: text/plain\r\nContent-Type: application/octet-stream; name=setup.exe\r\n\r\nMZ\r\n--a--\r\n"
	ev, _ := indexEvents([]byte(msg), testLimits())
	want := []string{
		`anomaly {Path:1 FileName:setup.exe ContentType:text/plain Detail:2 Content-Type fields}`,
		`leaf 1 "MZ" err=<nil> name=setup.exe`,
		`anomaly {Path: FileName: ContentType:multipart/mixed Detail:Content-Type with two boundary values "a" and "b"}`,
	}
	if strings.Join(ev, "\n") != strings.Join(want, "\n") {
		t.Errorf("events:\n  %s\nwant:\n  %s", strings.Join(ev, "\n  "), strings.Join(want, "\n  "))
	}
	if ref := refEvents([]byte(msg), testLimits()); strings.Join(ref, "\n") != strings.Join(ev, "\n") {
		t.Errorf("go-message's walk:\n  %s", strings.Join(ref, "\n  "))
	}
}

// checkNames is the invariant of every name: valid UTF-8 unless it is a
// raw form of the header's bytes, and no longer than the header can make.
func checkNames(t *testing.T, h textproto.Header, in Info) {
	t.Helper()
	limit := 4*int(HeaderSize(h)) + 16
	for _, n := range in.FileNames {
		if n == "" || len(n) > limit {
			t.Fatalf("name %q: empty or over %d bytes", n, limit)
		}
		if !utf8.ValidString(n) && !rawIn(h, n) && !invalidBytesFromHeader(h, n) {
			t.Fatalf("name %q is neither UTF-8 nor in the header", n)
		}
	}
}

// invalidBytesFromHeader says whether every byte of name that is not part
// of valid UTF-8 occurs in the header's Content-Type or Content-Disposition
// (or their %XX decoding): a name joined from RFC 2231 continuations is
// the header's bytes, though not in one piece. What must never happen is
// a name with bytes nobody sent.
func invalidBytesFromHeader(h textproto.Header, name string) bool {
	var all strings.Builder
	for _, k := range []string{"Content-Type", "Content-Disposition"} {
		for _, v := range h.Values(k) {
			all.WriteString(v)
			all.WriteString(percentDecode(v))
		}
	}
	for i := 0; i < len(name); {
		r, size := utf8.DecodeRuneInString(name[i:])
		if r == utf8.RuneError && size == 1 && !strings.Contains(all.String(), name[i:i+1]) {
			return false
		}
		i += size
	}
	return true
}

// rawIn says whether the bytes of name appear in the header's
// Content-Type or Content-Disposition, allowing for quoting and %XX.
func rawIn(h textproto.Header, name string) bool {
	for _, k := range []string{"Content-Type", "Content-Disposition"} {
		for _, v := range h.Values(k) {
			v = strings.ReplaceAll(v, `\`, "")
			if strings.Contains(v, strings.ReplaceAll(name, `\`, "")) || strings.Contains(percentDecode(v), name) {
				return true
			}
		}
	}
	return false
}

// FuzzParseHeader reads arbitrary Content-* fields: it never panics, and
// every name is valid UTF-8 or a raw form of the header's bytes, no longer
// than the header can make. Seeds are the Python forms and
// testdata/fuzz/FuzzParseHeader.
func FuzzParseHeader(f *testing.F) {
	if b, err := os.ReadFile("testdata/names/expected.json"); err == nil {
		var file struct{ Cases []pythonCase }
		json.Unmarshal(b, &file)
		for _, tc := range file.Cases {
			d := ""
			if tc.Disposition != nil {
				d = *tc.Disposition
			}
			f.Add(tc.ContentType, d, "base64")
		}
	}
	f.Fuzz(func(t *testing.T, ctype, disp, cte string) {
		var h textproto.Header
		for _, kv := range [][2]string{{"Content-Type", ctype}, {"Content-Disposition", disp}, {"Content-Transfer-Encoding", cte}} {
			for _, v := range strings.Split(kv[1], "\n") { // a line break makes a second field
				h.Add(kv[0], v)
			}
		}
		in := ParseHeader(h)
		checkNames(t, h, in)
		if len(in.FileNames) > 0 && in.FileName != in.FileNames[0] {
			t.Fatalf("FileName %q, names %q", in.FileName, in.FileNames)
		}
		for i, n := range in.FileNames {
			if contains(in.FileNames[:i], n) {
				t.Fatalf("name %q twice in %q", n, in.FileNames)
			}
		}
	})
}
