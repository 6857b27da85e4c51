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
		{"in-process", write("local.yaml", "lists: [{match: \"*@lists.example.org\"}]\n"), 0, "ok"},
		{"with a station", write("station.yaml", "lists: [{match: a@b}]\nstations: [http://127.0.0.1:7358]\nsecret_file: "+secret+"\n"), 0, "ok"},
		{"secret file missing", write("nosecret.yaml", "lists: [{match: a@b}]\nstations: [http://127.0.0.1:7358]\nsecret_file: "+dir+"/none\n"), 1, "secret_file"},
		{"a warning exits 0", write("warn.yaml", "lists: [{match: a@b}]\nnotify:\n  templates:\n    admin: {subject: \"%%Virus%% found\"}\n"), 0,
			"warning: " + dir + "/warn.yaml: line 4: notify.templates.admin.subject: %%Virus%% is not a placeholder"},
		{"problems with lines", write("bad.yaml", "lists: [{match: a@b}]\npolicy:\n  actions: {infected: {action: accept}}\nscna_all: true\n"), 1, "2 problem(s):\n  line 4: key \"scna_all\" is not a known setting (check its spelling and indentation; the README lists every setting)\n  line 3: policy.actions.infected.action: \"accept\" is not an action for infected; use one of: reject, tempfail, discard, strip, tag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"check-config", "-config", tt.config}, &stdout, &stderr)
			if code != tt.code || !strings.Contains(stdout.String()+stderr.String(), tt.out) {
				t.Errorf("exit %d, want %d; output %q, want %q", code, tt.code, stdout.String()+stderr.String(), tt.out)
			}
		})
	}
}
