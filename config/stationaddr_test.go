package config

import "testing"

func TestParseStation(t *testing.T) {
	for _, tt := range []struct {
		in     string
		secure bool
		want   string // "" : refused
	}{
		{"http://scan1.example.org:7358", false, "http://scan1.example.org:7358"},
		{"https://scan1.example.org", false, "https://scan1.example.org:7358"},
		{"scan1.example.org", false, "http://scan1.example.org:7358"},
		{"scan1.example.org:9000", true, "https://scan1.example.org:9000"},
		{"192.0.2.3", false, "http://192.0.2.3:7358"},
		{"192.0.2.3:7400", false, "http://192.0.2.3:7400"},
		{"[192.168.254.3]", false, "http://192.168.254.3:7358"},
		{"[192.168.254.3]:7400", true, "https://192.168.254.3:7400"},
		{"http://[192.168.254.3]:7358", false, "http://192.168.254.3:7358"},
		{"[2001:db8::3]", false, "http://[2001:db8::3]:7358"},
		{"https://[::1]:7358/", false, "https://[::1]:7358"},
		{"https://lb.example.org/avs/", false, "https://lb.example.org:7358/avs"},
		{"2001:db8::3", false, ""},
		{"ftp://x", false, ""},
		{"[scan1.example.org]", false, ""},
		{"[192.168.254.3", false, ""},
		{"scan1.example.org:0", false, ""},
		{"scan1.example.org:http", false, ""},
		{"user:pw@scan1.example.org", false, ""},
		{"scan_1.example.org", false, ""},
		{"", false, ""},
	} {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseStation(tt.in, tt.secure)
			if tt.want == "" {
				if err == nil {
					t.Errorf("%q accepted as %q", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("%q: %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for _, tt := range []struct {
		station string
		allow   bool
		ok      bool
	}{
		{"http://127.0.0.1:7358", false, true},
		{"http://[::1]:7358", false, true},
		{"localhost", false, true},
		{"http://scan1.example.org:7358", false, false},
		{"[192.168.254.3]", false, false},
		{"[192.168.254.3]", true, true},
		{"https://scan1.example.org:7358", false, true},
	} {
		t.Run(tt.station, func(t *testing.T) {
			m := DefaultMilter()
			m.ScanAll, m.Stations, m.SecretFile, m.AllowPlainHTTP = true, []string{tt.station}, "/etc/avstation/secret", tt.allow
			err := m.Prepare()
			if (err == nil) != tt.ok {
				t.Errorf("allow_plain_http=%v: %v", tt.allow, err)
			}
		})
	}
}
