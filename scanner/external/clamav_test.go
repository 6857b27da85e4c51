package external

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// clamdscanConfig is the documented clamdscan setup, with a clamd.conf that
// points clamdscan at addr ("127.0.0.1:PORT").
func clamdscanConfig(t *testing.T, host string, port int) Config {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "clamd.conf")
	// clamdscan reads only where clamd listens from clamd.conf.
	body := fmt.Sprintf("TCPSocket %d\nTCPAddr %s\n", port, host)
	if err := os.WriteFile(conf, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return Config{
		Name:          "clamdscan",
		Path:          harness.Program(t, "clamdscan"),
		Args:          []string{"--no-summary", "--stream", "--config-file=" + conf, "{file}"},
		InfectedCodes: []int{1},
		CleanCodes:    []int{0},
		ThreatPattern: `: (\S+) FOUND`,
		VersionArgs:   []string{"--config-file=" + conf, "--version"},
		TempDir:       t.TempDir(),
	}
}

// TestClamAV runs the real clamdscan (against the harness's clamd) and
// clamscan (on the harness's signature database).
func TestClamAV(t *testing.T) {
	clamd := harness.StartClamd(t)
	var port int
	if _, err := fmt.Sscanf(clamd.TCPAddr, "127.0.0.1:%d", &port); err != nil {
		t.Fatalf("clamd address %q: %v", clamd.TCPAddr, err)
	}
	clamscan := Config{
		Name:          "clamscan",
		Path:          harness.Program(t, "clamscan"),
		Args:          []string{"--no-summary", "--stdout", "--database=" + filepath.Join(clamd.Dir, "db"), "{file}"},
		InfectedCodes: []int{1},
		CleanCodes:    []int{0},
		ThreatPattern: `: (\S+) FOUND`,
		TempDir:       t.TempDir(),
	}
	eicar := harness.EICAR()
	want := harness.EicarSignature + ".UNOFFICIAL"
	tests := []struct {
		name    string
		config  Config
		content []byte
		found   bool
		threat  string
		wantErr string
	}{
		{"clamdscan eicar", clamdscanConfig(t, "127.0.0.1", port), eicar, true, want, ""},
		{"clamdscan eicar inside text", clamdscanConfig(t, "127.0.0.1", port),
			append(append([]byte("some text\n"), eicar...), "\nmore"...), true, want, ""},
		{"clamdscan clean", clamdscanConfig(t, "127.0.0.1", port), []byte("hello, list\n"), false, "", ""},
		{"clamdscan empty", clamdscanConfig(t, "127.0.0.1", port), nil, false, "", ""},
		{"clamdscan no clamd", clamdscanConfig(t, "127.0.0.1", harness.FreePort(t)), eicar, false, "",
			"external clamdscan: exit code 2: ERROR: Could not connect to clamd"},
		{"clamscan eicar", clamscan, eicar, true, want, ""},
		{"clamscan clean", clamscan, []byte("hello, list\n"), false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := New(tc.config)
			if err != nil {
				t.Fatal(err)
			}
			d, err := e.Scan(t.Context(), bytes.NewReader(tc.content))
			switch {
			case tc.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Scan: %+v, %v; want error %q", d, err, tc.wantErr)
				}
			case err != nil:
				t.Fatalf("Scan: %v", err)
			case d.Found != tc.found || d.Threat != tc.threat:
				t.Errorf("Scan: Found %v Threat %q, want %v %q (raw %q)", d.Found, d.Threat, tc.found, tc.threat, d.Raw)
			}
			t.Logf("raw: %q", d.Raw)
			assertEmptyDir(t, tc.config.TempDir)
		})
	}

	t.Run("clamdscan version", func(t *testing.T) {
		e, err := New(clamdscanConfig(t, "127.0.0.1", port))
		if err != nil {
			t.Fatal(err)
		}
		v, err := e.Version(t.Context())
		// clamdscan prints "ClamAV 1.4.6", and the database version after a
		// slash when clamd has an official one.
		if err != nil || v.Name != "clamdscan" || !strings.HasPrefix(v.Version, "ClamAV ") {
			t.Errorf("Version: %+v, %v; want a ClamAV version line", v, err)
		}
		t.Logf("version: %q", v.Version)
	})
}
