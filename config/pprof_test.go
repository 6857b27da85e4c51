package config

import (
	"strings"
	"testing"
)

// TestPprofListen: the profiler may listen on loopback only, in both
// daemons; a wrong address names the key and its line.
func TestPprofListen(t *testing.T) {
	tests := []struct {
		name, addr string
		ok         bool
	}{
		{"off", `""`, true},
		{"ipv4 loopback", "127.0.0.1:6060", true},
		{"ipv6 loopback", `"[::1]:6060"`, true},
		{"any address", "0.0.0.0:6060", false},
		{"a name", "localhost:6060", false},
		{"no port", "127.0.0.1", false},
		{"public", "192.0.2.1:6060", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, merr := LoadMilter(write(t, "lists: [{match: a@b}]\npprof_listen: "+tt.addr+"\n"))
			_, serr := LoadStation(write(t, "secret_file: /x\npprof_listen: "+tt.addr+"\n"))
			for daemon, err := range map[string]error{"avmilter": merr, "avstation": serr} {
				if tt.ok {
					if err != nil {
						t.Errorf("%s: %v", daemon, err)
					}
					continue
				}
				if err == nil || !strings.Contains(err.Error(), "line 2: pprof_listen:") {
					t.Errorf("%s: want a pprof_listen problem on line 2, got %v", daemon, err)
				}
			}
		})
	}
}
