package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret")
	os.WriteFile(secret, []byte("a-secret-word\n"), 0o600)
	open := filepath.Join(dir, "open-secret")
	os.WriteFile(open, []byte("a-secret-word\n"), 0o644)
	os.Chmod(open, 0o644)
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(text), 0o600)
		return p
	}
	tests := []struct {
		name   string
		config string
		code   int
		out    string
	}{
		{"good", write("good.yaml", "secret_file: "+secret+"\nspool_dir: /tmp\n"), 0, "ok"},
		{"secret readable by others", write("open.yaml", "secret_file: "+open+"\nspool_dir: /tmp\n"), 1,
			"mode 0644 is readable by group or others; run: chmod 600 " + open},
		{"problems", write("bad.yaml", "listen: nowhere\nmax_concurrent: 0\n"), 1, "3 problem(s)"},
		{"missing file", filepath.Join(dir, "none.yaml"), 1, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"check-config", "-config", tt.config}, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
				t.Errorf("exit %d, want %d; output %q, want %q", code, tt.code, stdout.String()+stderr.String(), tt.out)
			}
			if strings.Contains(stdout.String()+stderr.String(), "a-secret-word") {
				t.Error("the secret was printed")
			}
		})
	}
}

func TestUnknownCommand(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"frobnicate"}, &stdout, &stderr); code != 2 || !strings.Contains(stderr.String(), `unknown command "frobnicate"`) {
		t.Errorf("exit %d, %q", code, stderr.String())
	}
	if code := run([]string{"version"}, &stdout, &stderr); code != 0 || !strings.HasPrefix(stdout.String(), "avstation ") {
		t.Errorf("version: exit %d, %q", code, stdout.String())
	}
}
