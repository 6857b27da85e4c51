package external

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNoShell: the engine starts the scanner itself, never through a
// shell: arguments full of shell syntax, and a temp directory whose name
// is too, reach the scanner as the very argv elements configured (the
// file's path in one element), nothing they say is run, and the scanner's
// parent is this process, not a shell.
func TestNoShell(t *testing.T) {
	script, err := filepath.Abs(filepath.Join("testdata", "argv.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(script, 0o755); err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	canary := filepath.Join(work, "PWNED")
	// A name cannot hold a slash: these would touch PWNED in the current
	// directory, the package's or the scan's.
	temp := filepath.Join(work, "tmp; touch PWNED $(touch PWNED) `touch PWNED` | &")
	if err := os.Mkdir(temp, 0o700); err != nil {
		t.Fatal(err)
	}
	log := filepath.Join(work, "argv.log")
	args := []string{log, "{file}", "--file={file}", ";rm -rf " + work, "$(touch " + canary + ")", "`touch " + canary + "`",
		"a b\tc", "*", "'\"", "> " + canary, "&& touch " + canary}
	e, err := New(Config{Name: "argv", Path: script, Args: args, CleanCodes: []int{0}, InfectedCodes: []int{1},
		Timeout: 10 * time.Second, TempDir: temp})
	if err != nil {
		t.Fatal(err)
	}
	d, err := e.Scan(context.Background(), strings.NewReader("harmless"))
	if err != nil || d.Found {
		t.Fatalf("Scan = %+v, %v", d, err)
	}
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatalf("the scanner did not run: %v", err)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != "ppid "+strconv.Itoa(os.Getpid()) {
		t.Errorf("scanner's parent: %q, want this process %d (no shell between)", lines[0], os.Getpid())
	}
	got := lines[1:]
	if len(got) != len(args)-1 {
		t.Fatalf("%d arguments, want %d:\n%s", len(got), len(args)-1, b)
	}
	for i, a := range args[1:] {
		g := strings.TrimPrefix(got[i], "arg ")
		if strings.Contains(a, FilePlaceholder) {
			want := strings.ReplaceAll(a, FilePlaceholder, filepath.Join(temp, "avstation-external-"))
			if !strings.HasPrefix(g, want) || !strings.HasSuffix(g, "/"+fileName) {
				t.Errorf("argument %d: %q, want the temp file's path whole in %q", i+1, g, a)
			}
			continue
		}
		if g != a {
			t.Errorf("argument %d: %q, want %q as configured", i+1, g, a)
		}
	}
	for _, c := range []string{canary, "PWNED", filepath.Join(temp, "PWNED")} {
		if _, err := os.Stat(c); err == nil {
			os.Remove(c)
			t.Errorf("%s exists: shell syntax in the arguments was run", c)
		}
	}
	if _, err := os.Stat(work); err != nil {
		t.Errorf("%s: %v", work, err)
	}
}
