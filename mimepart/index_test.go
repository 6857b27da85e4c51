package mimepart

import (
	"strings"
	"testing"
)

func crlf(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }

var indexCases = []struct{ name, msg string }{
	{"single part", "Subject: x\n\nhello\n"},
	{"no body", "Subject: x\n"},
	{"bad header", " x\nSubject: y\n\nz\n"},
	{"multipart", "Content-Type: multipart/mixed; boundary=b\n\npre\n--b\nContent-Type: text/plain\n\none\n--b\nContent-Type: application/zip; name=a.zip\nContent-Transfer-Encoding: base64\n\nUEsDBA==\n--b--\nepi\n"},
	{"padding", "Content-Type: multipart/mixed; boundary=b\n\n--b \t\n\none\n--b  \n\ntwo\n--b--  \n"},
	{"empty body part", "Content-Type: multipart/mixed; boundary=b\n\n--b\nX: y\n\n--b\n\ntwo\n--b--\n"},
	{"unclosed", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo\n"},
	{"unclosed partial", "Content-Type: multipart/mixed; boundary=bound\n\n--bound\n\none\n--bou"},
	{"no delimiter", "Content-Type: multipart/mixed; boundary=b\n\njust text\n"},
	{"garbage after boundary", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b x\n\ntwo\n--b--\n"},
	{"dash after boundary", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b-x\n\ntwo\n--b--\n"},
	{"prefix boundary", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: multipart/mixed; boundary=bb\n\n--bb\n\nin\n--bb--\n--b\n\ntwo\n--b--\n"},
	{"nested", "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\nplain\n--i\nContent-Type: text/html\n\n<p>\n--i--\n--o\nContent-Type: application/octet-stream; name=\"=?utf-8?q?a=C3=A9.exe?=\"\n\nMZ\n--o--\n"},
	{"inner unclosed", "Content-Type: multipart/mixed; boundary=o\n\n--o\nContent-Type: multipart/alternative; boundary=i\n\n--i\n\nplain\n--o\n\ntwo\n--o--\n"},
	{"header runs into boundary", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/plain\n--b\n\ntwo\n--b--\n"},
	{"no boundary param", "Content-Type: multipart/mixed\n\n--b\n\none\n--b--\n"},
	{"rfc822", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\nContent-Type: message/rfc822\n\nSubject: in\nContent-Type: multipart/mixed; boundary=c\n\n--c\n\nx\n--c\nContent-Disposition: attachment; filename=v.exe\n\nMZ\n--c--\n--b--\n"},
	{"rfc822 single", "Content-Type: message/rfc822\n\nSubject: in\n\nbody\n"},
	{"rfc822 bad header", "Content-Type: message/rfc822; name=m.eml\n\n bad\nmore\n"},
	{"rfc822 base64", "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n--b--\n"},
	{"mixed line endings", "Content-Type: multipart/mixed; boundary=b\n\n--b\r\n\r\none\r\n--b\n\ntwo\n--b--\r\n"},
	{"bare LF before boundary", "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\none\n--b\r\n\r\ntwo\r\n--b--\r\n"},
	{"close at end", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b--"},
	{"delimiter at end", "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b"},
	{"qp", "Content-Type: text/plain\nContent-Transfer-Encoding: quoted-printable\n\na=3Db=\nc\n"},
}

func TestIndexAgreesWithGoMessage(t *testing.T) {
	for _, tc := range indexCases {
		for _, conv := range []func(string) string{func(s string) string { return s }, crlf} {
			msg := []byte(conv(tc.msg))
			t.Run(tc.name, func(t *testing.T) {
				checkAgainstRef(t, msg, testLimits())
			})
		}
	}
}

func TestIndexLimits(t *testing.T) {
	deep := "Content-Type: multipart/mixed; boundary=a\n\n--a\nContent-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: message/rfc822\n\nSubject: x\n\nin\n--b--\n--a\n\nafter\n--a--\n"
	many := "Content-Type: multipart/mixed; boundary=b\n\n" + strings.Repeat("--b\n\nx\n", 5) + "--b--\n"
	big := "Content-Type: multipart/mixed; boundary=b\n\n--b\nX-Big: " + strings.Repeat("y", 300) + "\n\nx\n--b--\n"
	for _, tc := range []struct {
		name, msg string
		lim       Limits
	}{
		{"depth", deep, Limits{MaxDepth: 2, MaxParts: 100, MaxHeaderBytes: 1000}},
		{"depth 1", deep, Limits{MaxDepth: 1, MaxParts: 100, MaxHeaderBytes: 1000}},
		{"parts", many, Limits{MaxDepth: 5, MaxParts: 3, MaxHeaderBytes: 1000}},
		{"header", big, Limits{MaxDepth: 5, MaxParts: 100, MaxHeaderBytes: 100}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := checkAgainstRef(t, []byte(tc.msg), tc.lim)
			if !strings.HasPrefix(ev[len(ev)-1], "limit ") {
				t.Errorf("last event %q, want a limit", ev[len(ev)-1])
			}
		})
	}
}

func checkAgainstRef(t *testing.T, msg []byte, lim Limits) []string {
	t.Helper()
	got, _ := indexEvents(msg, lim)
	want := refEvents(msg, lim)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("message %q\nindex:\n  %s\ngo-message:\n  %s", msg, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	return got
}
