package bypass

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"
)

func TestParseAccepts(t *testing.T) {
	tests := []struct {
		name string
		text string
		n    int
	}{
		{"empty file", "", 0},
		{"comments and blank lines", "# comment\n\n   \n\t# indented comment\n", 0},
		{"trailing comment", "alice@example.org # why\n192.0.2.1\t# tab before\n", 2},
		{"hash inside an address", "a#b@example.org\n", 1},
		{"crlf", "alice@example.org\r\n*@example.com\r\n", 2},
		{"no final newline", "alice@example.org", 1},
		{"bom", "\uFEFFalice@example.org\n", 1},
		{"surrounding whitespace", "   *@example.org   \n", 1},
		{"duplicates counted once", "a@example.org\nA@EXAMPLE.ORG\n192.0.2.1\n192.0.2.1/32\n", 2},
		{"mapped address is ipv4", "::ffff:192.0.2.1\n192.0.2.1\n", 1},
		{"auth prefix any case", "AUTH:bob\nauth:bob\n", 1},
		{"international domain", "*@bücher.example\n", 1},
		{"underscore label", "*@_dmarc.example\n", 1},
		{"all kinds", sample, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := mustParse(t, tt.text)
			if l.Len() != tt.n {
				t.Errorf("Len = %d, want %d", l.Len(), tt.n)
			}
		})
	}
}

func TestParseRejects(t *testing.T) {
	tests := []struct {
		line string
		want string // the whole error for a file with this one line at line 1
	}{
		{"exa mple.org", `"exa mple.org" is not an address, *@domain, IP, CIDR or auth:USER`},
		{"example.org", `"example.org" is not an address, *@domain, IP, CIDR or auth:USER; for every sender of the domain write *@example.org`},
		{"*.example.org", `"*.example.org" is not an address, *@domain, IP, CIDR or auth:USER; for every subdomain write *@*.example.org`},
		{"@example.org", `"@example.org" has no local part; for every sender of the domain write *@example.org`},
		{"192.0.2.7/24", `"192.0.2.7/24" has host bits set; write 192.0.2.0/24`},
		{"2001:db8::1/32", `"2001:db8::1/32" has host bits set; write 2001:db8::/32`},
		{"192.0.2.0/33", `"192.0.2.0/33" is not an address, *@domain, IP, CIDR or auth:USER`},
		{"192.0.2.256", `"192.0.2.256" is not an address, *@domain, IP, CIDR or auth:USER`},
		{"fe80::1%eth0", `"fe80::1%eth0": an IPv6 zone cannot be matched; write fe80::1`},
		{"auth:", `"auth:" has no user name; write auth:USER, as in auth:bob`},
		{"a*@example.org", `"a*@example.org": * is only allowed as *@domain or *@*.domain`},
		{"a@b@example.org", `"a@b@example.org" has more than one @`},
		{"<alice@example.org>", `"<alice@example.org>": the local part has a character not allowed in an envelope address`},
		{"alice@", `"alice@": the domain is empty`},
		{"*@", `"*@": the domain is empty`},
		{"*@*", `"*@*": "*" is not a valid domain`},
		{"*@*.", `"*@*.": the domain is empty`},
		{"*@example..org", `"*@example..org": domain "example..org" has an empty label`},
		{"*@*.*.example.org", `"*@*.*.example.org": "*.example.org" is not a valid domain`},
		{"alice@exa!mple.org", `"alice@exa!mple.org": "exa!mple.org" is not a valid domain`},
		{"*@" + strings.Repeat("a", 64) + ".org", `"*@` + strings.Repeat("a", 64) + `.org": domain "` + strings.Repeat("a", 64) + `.org" has a label longer than 63 characters`},
		{"\xff@example.org", `"\xff@example.org" is not an address, *@domain, IP, CIDR or auth:USER`},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			l, err := Parse("/etc/avstation/bypass", strings.NewReader(tt.line+"\n"))
			if l != nil {
				t.Errorf("got a list with an error")
			}
			want := "bypass /etc/avstation/bypass: line 1: " + tt.want
			if err == nil || err.Error() != want {
				t.Errorf("error\n got %v\nwant %s", err, want)
			}
		})
	}
}

func TestParseReportsEveryBadLine(t *testing.T) {
	text := `# header
alice@example.org
exa mple.org

192.0.2.7/24
*@example.org   # good
auth:
2001:db8::/32
`
	l, err := Parse("/etc/avstation/bypass", strings.NewReader(text))
	if l != nil {
		t.Fatal("a half-loaded list was returned")
	}
	want := `bypass /etc/avstation/bypass: line 3: "exa mple.org" is not an address, *@domain, IP, CIDR or auth:USER
bypass /etc/avstation/bypass: line 5: "192.0.2.7/24" has host bits set; write 192.0.2.0/24
bypass /etc/avstation/bypass: line 7: "auth:" has no user name; write auth:USER, as in auth:bob`
	if err == nil || err.Error() != want {
		t.Fatalf("error\n got %v\nwant %s", err, want)
	}
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %T is not *Error", err)
	}
	var lines []int
	for _, le := range pe.Lines {
		lines = append(lines, le.Line)
	}
	if fmt.Sprint(lines) != "[3 5 7]" {
		t.Errorf("bad lines %v, want [3 5 7]", lines)
	}
	var le *LineError
	if !errors.As(err, &le) || le.Line != 3 {
		t.Errorf("errors.As *LineError = %+v", le)
	}
}

func TestParseManyBadLinesTruncated(t *testing.T) {
	text := strings.Repeat("nonsense\n", maxShown+7)
	_, err := Parse("junk", strings.NewReader(text))
	var pe *Error
	if !errors.As(err, &pe) || len(pe.Lines) != maxShown+7 {
		t.Fatalf("err = %v", err)
	}
	msg := err.Error()
	if n := strings.Count(msg, "\n") + 1; n != maxShown+1 {
		t.Errorf("%d lines printed, want %d", n, maxShown+1)
	}
	if !strings.HasSuffix(msg, "bypass junk: and 7 more bad lines") {
		t.Errorf("no summary line: ...%s", msg[len(msg)-60:])
	}
}

func TestParseReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("alice@example.org\n"), iotest.ErrReader(errors.New("disk on fire")))
	l, err := Parse("f", r)
	if l != nil || err == nil || err.Error() != "bypass f: disk on fire" {
		t.Errorf("Parse = %v, %v", l, err)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if err := os.WriteFile(good, []byte("*@example.org\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Load(good)
	if err != nil || l.Len() != 1 || l.Name() != good {
		t.Fatalf("Load = %v, %v", l, err)
	}

	missing := filepath.Join(dir, "missing")
	if _, err := Load(missing); !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing file: %v", err)
	}

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("ok@example.org\nnot an entry\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad)
	if want := "bypass " + bad + ": line 2: "; err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("bad file: %v, want prefix %q", err, want)
	}
}
