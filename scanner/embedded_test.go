package scanner

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/textenc/textenctest"
	"github.com/avstation/avstation/verdict"
)

// uuencodeText is "begin 644 NAME" … "end" in 45-byte lines.
func uuencodeText(name, data string) string {
	return "begin 644 " + name + "\n" + textenctest.Uuencode([]byte(data)) + "`\nend\n"
}

// yencText escapes only what must be ('=', NUL, CR, LF).
func yencText(name, data string) string {
	var b strings.Builder
	b.WriteString("=ybegin line=128 size=" + strconv.Itoa(len(data)) + " name=" + name + "\n")
	for i := 0; i < len(data); i++ {
		o := data[i] + 42
		if o == 0 || o == '\n' || o == '\r' || o == '=' {
			b.WriteByte('=')
			o += 64
		}
		b.WriteByte(o)
	}
	b.WriteString("\n=yend\n")
	return b.String()
}

func singleText(body string) string {
	return "From: a@example.org\nSubject: t\nContent-Type: text/plain\n\n" + body
}

func TestEmbeddedFiles(t *testing.T) {
	evil := "MZ EVIL payload"
	type want struct {
		status   verdict.Status
		path     string // of the first finding
		fileName string
		manifest []string // paths that must be in the manifest
	}
	for _, tc := range []struct {
		name string
		opt  Options
		msg  string
		want want
	}{
		{"uuencoded in a single-part text, attachments mode", Options{Mode: ModeAttachments},
			singleText("Hi,\n" + uuencodeText("evil.com", evil) + "bye\n"),
			want{verdict.Infected, "1/evil.com", "evil.com", []string{"1", "1/evil.com"}}},
		{"uuencoded in a multipart's text, all mode", Options{Mode: ModeAll},
			multipart("Content-Type: text/plain\n\n"+uuencodeText("C:\\tmp\\evil.com", evil), attachment("a.txt", "fine")),
			want{verdict.Infected, "1/evil.com", "evil.com", []string{"1/evil.com", "2"}}},
		{"a uuencoded zip is opened", Options{Mode: ModeAttachments},
			singleText(uuencodeText("tools.zip", string(plainZip(t, "setup.exe", evil)))),
			want{verdict.Infected, "1/tools.zip/setup.exe", "setup.exe", []string{"1/tools.zip", "1/tools.zip/setup.exe"}}},
		{"yEnc", Options{Mode: ModeAttachments}, singleText(yencText("y.bin", evil)),
			want{verdict.Infected, "1/y.bin", "y.bin", []string{"1/y.bin"}}},
		{"a name of digits is not read as a part number", Options{Mode: ModeAttachments}, singleText(uuencodeText("2", evil)),
			want{verdict.Infected, "1/2 (uuencode)", "2", nil}},
		{"the same name twice", Options{Mode: ModeAttachments}, singleText(uuencodeText("a.bin", "fine") + uuencodeText("a.bin", evil)),
			want{verdict.Infected, "1/a.bin (2)", "a.bin", []string{"1/a.bin", "1/a.bin (2)"}}},
		{"cut short: scanned as decoded, no finding", Options{Mode: ModeAttachments},
			singleText(strings.TrimSuffix(uuencodeText("evil.com", evil), "`\nend\n") + "-- \nsig\n"),
			want{verdict.Infected, "1/evil.com", "evil.com", nil}},
		{"a gap between data lines is unscannable", Options{Mode: ModeAttachments},
			singleText(strings.Replace(uuencodeText("x.bin", strings.Repeat("harmless ", 20)), "\n", "\n(not data)\n", 2)),
			want{verdict.Unscannable, "1/x.bin", "x.bin", []string{"1/x.bin"}}},
		{"larger than max_member_size", Options{Mode: ModeAttachments, MaxMemberSize: 10},
			singleText(uuencodeText("big.bin", strings.Repeat("x", 100))),
			want{verdict.LimitExceeded, "1/big.bin", "big.bin", []string{"1/big.bin"}}},
		{"more files than max_members", Options{Mode: ModeAttachments, MaxMembers: 1},
			singleText(uuencodeText("a", "x") + uuencodeText("b", "y")),
			want{verdict.LimitExceeded, "1/b", "b", []string{"1/a"}}},
		{"message mode leaves the text to the engine", Options{Mode: ModeMessage},
			singleText(uuencodeText("evil.com", "harmless")),
			want{verdict.Clean, "", "", nil}},
		{"an attachment that is not text is not searched", Options{Mode: ModeAttachments},
			multipart(textPart, attachment("data.bin", uuencodeText("evil.com", evil))),
			want{verdict.Clean, "", "", []string{"2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := scan(t, tc.opt, &fakeEngine{}, tc.msg)
			if v.Status != tc.want.status {
				t.Fatalf("status %q, want %q; findings %+v", v.Status, tc.want.status, v.Findings)
			}
			var paths []string
			for _, p := range v.Manifest {
				paths = append(paths, p.Path)
			}
			for _, p := range tc.want.manifest {
				if !slices.Contains(paths, p) {
					t.Errorf("manifest %q lacks %q", paths, p)
				}
			}
			if tc.want.status == verdict.Clean {
				if slices.ContainsFunc(paths, func(p string) bool { return strings.Contains(p, "evil") }) {
					t.Errorf("manifest %q lists a decoded file in message mode", paths)
				}
				return
			}
			f := v.Findings[0]
			if f.Path != tc.want.path || f.FileName != tc.want.fileName {
				t.Errorf("first finding at %q (%q), want %q (%q): %+v", f.Path, f.FileName, tc.want.path, tc.want.fileName, v.Findings)
			}
		})
	}
}

// TestEmbeddedAttachmentsModeStreams: in attachments mode the
// text itself is not sent to the engines, its decoded file is.
func TestEmbeddedAttachmentsModeStreams(t *testing.T) {
	e := &fakeEngine{}
	scan(t, Options{Mode: ModeAttachments}, e, singleText("Hi,\n"+uuencodeText("f.txt", "decoded content")))
	if len(e.streams) != 1 || e.streams[0] != "decoded content" {
		t.Fatalf("engine saw %q, want only the decoded file", e.streams)
	}
}
