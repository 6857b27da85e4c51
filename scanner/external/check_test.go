package external

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	plain := filepath.Join(t.TempDir(), "not-executable")
	if err := os.WriteFile(plain, []byte("#!/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		config func(*Config)
		want   []string // the start of each problem, in order
	}{
		{name: "valid", config: func(*Config) {}},
		{name: "deletion instead of infected codes", config: func(c *Config) {
			c.InfectedCodes, c.DeletedMeansInfected = nil, true
		}},
		{name: "no name", config: func(c *Config) { c.Name = " " }, want: []string{"name: empty; "}},
		{name: "no path", config: func(c *Config) { c.Path = "" }, want: []string{"path: empty; "}},
		{name: "relative path", config: func(c *Config) { c.Path = "clamdscan" },
			want: []string{`path: "clamdscan" is not absolute; `}},
		{name: "missing program", config: func(c *Config) { c.Path = "/nonexistent/scan" },
			want: []string{"path: stat /nonexistent/scan: no such file or directory; install"}},
		{name: "directory", config: func(c *Config) { c.Path = "/usr/bin" },
			want: []string{"path: /usr/bin is not a regular file; "}},
		{name: "not executable", config: func(c *Config) { c.Path = plain },
			want: []string{"path: " + plain + " is not executable by this user; "}},
		{name: "no file argument", config: func(c *Config) { c.Args = []string{"--stream", "file"} },
			want: []string{"args: no argument contains {file}; "}},
		{name: "no args", config: func(c *Config) { c.Args = nil },
			want: []string{"args: no argument contains {file}; "}},
		{name: "code in both lists", config: func(c *Config) { c.InfectedCodes, c.CleanCodes = []int{1, 2}, []int{0, 2} },
			want: []string{"infected_codes: 2 is also in clean_codes; "}},
		{name: "code out of range", config: func(c *Config) { c.InfectedCodes, c.CleanCodes = []int{-1}, []int{0, 256} },
			want: []string{"infected_codes: -1 is not an exit code; ", "clean_codes: 256 is not an exit code; "}},
		{name: "no clean codes", config: func(c *Config) { c.CleanCodes = nil },
			want: []string{"clean_codes: empty; "}},
		{name: "nothing could be found", config: func(c *Config) { c.InfectedCodes = nil },
			want: []string{"infected_codes: empty and deleted_means_infected is off; "}},
		{name: "bad pattern", config: func(c *Config) { c.ThreatPattern = `: (\S+ FOUND` },
			want: []string{"threat_pattern: error parsing regexp: missing closing ): "}},
		{name: "negative timeout", config: func(c *Config) { c.Timeout = -time.Second },
			want: []string{"timeout: -1s is negative; "}},
		{name: "negative concurrency", config: func(c *Config) { c.Concurrency = -1 },
			want: []string{"concurrency: -1 is negative; "}},
		{name: "relative temp dir", config: func(c *Config) { c.TempDir = "tmp" },
			want: []string{`temp_dir: "tmp" is not absolute; `}},
		{name: "missing temp dir", config: func(c *Config) { c.TempDir = "/nonexistent/tmp" },
			want: []string{"temp_dir: stat /nonexistent/tmp: no such file or directory; "}},
		{name: "temp dir is a file", config: func(c *Config) { c.TempDir = plain },
			want: []string{"temp_dir: " + plain + " is not a directory; "}},
		{name: "everything wrong", config: func(c *Config) {
			*c = Config{Timeout: -1, ThreatPattern: "("}
		}, want: []string{"name: ", "path: ", "args: ", "clean_codes: ", "infected_codes: ", "threat_pattern: ", "timeout: "}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := fakeConfig(t, "")
			tc.config(&c)
			got := c.Check()
			if len(got) != len(tc.want) {
				t.Fatalf("Check() = %q, want %d problems starting %q", got, len(tc.want), tc.want)
			}
			for i, p := range got {
				if !strings.HasPrefix(p, tc.want[i]) {
					t.Errorf("problem %d = %q, want it to start with %q", i, p, tc.want[i])
				}
				if !strings.Contains(p, "; ") {
					t.Errorf("problem %q has no hint", p)
				}
			}
			e, err := New(c)
			if len(tc.want) == 0 {
				if err != nil || e == nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New accepted an invalid config")
			}
			for _, p := range got {
				if !strings.Contains(err.Error(), p) {
					t.Errorf("New's error %q does not list %q", err, p)
				}
			}
		})
	}
}

// TestNewDefaults fills in the documented defaults.
func TestNewDefaults(t *testing.T) {
	c := fakeConfig(t, "")
	c.Timeout, c.Concurrency = 0, 0
	e, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	if e.c.Timeout != DefaultTimeout || cap(e.sem) != DefaultConcurrency {
		t.Errorf("defaults: timeout %v concurrency %d, want %v %d", e.c.Timeout, cap(e.sem), DefaultTimeout, DefaultConcurrency)
	}
	if e.Name() != "fake" {
		t.Errorf("Name() = %q", e.Name())
	}
}
