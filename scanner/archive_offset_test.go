package scanner

import (
	"archive/zip"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// zipCrypto is a ZipCrypto zip of name made by zip(1) with password.
func zipCrypto(t *testing.T, name, content, password string) []byte {
	t.Helper()
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600)
	cmd := exec.Command("zip", "-q", "-P", password, "out.zip", name)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("zip: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.zip"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func plainZip(t *testing.T, name, content string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, _ := w.Create(name)
	f.Write([]byte(content))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestPrefixedArchives: an archive with bytes in front of it (one junk
// byte, a self-extractor's stub) is opened as unzip would open it, with
// its members scanned, named and their encryption reported.
func TestPrefixedArchives(t *testing.T) {
	sfx := "MZ\x90\x00" + strings.Repeat("stub ", 2000)
	tests := []struct {
		name         string
		text         string // the message's text part
		att, data    string
		status       verdict.Status
		path, detail string
	}{
		{"encrypted zip, one byte prepended", "hello list", "secret.zip", "\x00" + string(zipCrypto(t, "plan.txt", "the plan", "s3cret")),
			verdict.Encrypted, "2/secret.zip/plan.txt", "ZipCrypto"},
		{"encrypted zip, one byte prepended, password in the text", "the password is s3cret", "secret.zip",
			"\x00" + string(zipCrypto(t, "evil.exe", "EVIL inside", "s3cret")), verdict.Infected, "2/secret.zip/evil.exe", "Test.Evil"},
		{"self-extracting exe with a member", "hello list", "setup.exe", sfx + string(plainZip(t, "payload.exe", "EVIL")),
			verdict.Infected, "2/setup.exe/payload.exe", "Test.Evil"},
		{"end record claiming a directory that is not there", "hello list", "x.bin",
			"\x00" + strings.Replace(string(plainZip(t, "a.txt", "fine")), "PK\x01\x02", "XXXX", 1), verdict.Unscannable, "2/x.bin", "zip"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := scan(t, Options{TryPasswords: true}, &fakeEngine{}, multipart("Content-Type: text/plain\n\n"+tt.text, attachment(tt.att, tt.data)))
			f, ok := v.First(tt.status)
			if !ok {
				t.Fatalf("status %q, no %q finding: %+v", v.Status, tt.status, v.Findings)
			}
			if f.Path != tt.path || !strings.Contains(f.Threat+f.Detail, tt.detail) {
				t.Errorf("finding %+v, want path %q and %q", f, tt.path, tt.detail)
			}
		})
	}
}
