package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"go.yaml.in/yaml/v3"
)

// fuzzLoad writes data as a config file and loads it with load. A config
// that is refused must say so as a *Problems naming the file, with at
// least one problem; one that loads must pass its own checks again and
// survive a YAML round trip: written out and loaded back, it is the same
// config.
func fuzzLoad[T any](t *testing.T, data []byte, load func(string) (*T, error), prepare func(*T) error) {
	dir := t.TempDir()
	path := filepath.Join(dir, "fuzz.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := load(path)
	if err != nil {
		var p *Problems
		if !errors.As(err, &p) {
			if os.IsNotExist(err) || errors.Is(err, os.ErrPermission) {
				return // a file the config names, which the checks read
			}
			t.Fatalf("error %T %v, want *Problems", err, err)
		}
		if p.File != path || len(p.List) == 0 {
			t.Fatalf("problems %+v for %s", p, path)
		}
		for _, s := range p.List {
			if s == "" {
				t.Fatalf("an empty problem in %q", p.List)
			}
		}
		return
	}
	if err := prepare(cfg); err != nil {
		t.Fatalf("loaded, but its own checks fail: %v", err)
	}
	out, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	again := filepath.Join(dir, "again.yaml")
	if err := os.WriteFile(again, out, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg2, err := load(again)
	if err != nil {
		t.Fatalf("written back as\n%s\nit does not load: %v", out, err)
	}
	if out2, _ := yaml.Marshal(cfg2); string(out2) != string(out) {
		t.Fatalf("round trip:\n%s\n%s", out, out2)
	}
}

// FuzzLoadMilter: avmilter's config loader on arbitrary files (see
// fuzzLoad). Seeds are in testdata/fuzz/FuzzLoadMilter.
func FuzzLoadMilter(f *testing.F) {
	f.Add([]byte("listen: inet:127.0.0.1:7357\nlists:\n  - match: dev@lists.example.org\nstations: [\"http://127.0.0.1:7358\"]\nsecret_file: /nonexistent\n"))
	f.Add([]byte("listen: unix:/run/x.sock\nsocket_mode: \"0660\"\nscan_all: true\nmemory_buffer: 1MiB\npolicy:\n  infected: reject\n"))
	f.Add([]byte("listen: [\nlists: *a\n"))
	f.Add([]byte("records_keep: 1\nmemory_buffer: -1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, data, LoadMilter, func(m *Milter) error { return m.Prepare() })
	})
}

// FuzzLoadStation: avstation's config loader on arbitrary files (see
// fuzzLoad). Seeds are in testdata/fuzz/FuzzLoadStation.
func FuzzLoadStation(f *testing.F) {
	f.Add([]byte("listen: 127.0.0.1:7358\nsecret_file: /nonexistent\nscanner:\n  clamd: [\"127.0.0.1:3310\"]\n  max_depth: 8\n"))
	f.Add([]byte("listen: nowhere\nscanner:\n  max_size: 10XB\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzLoad(t, data, LoadStation, func(s *Station) error {
			c := &checker{file: "(fuzz)", lines: map[string]int{}}
			s.check(c)
			return c.err()
		})
	})
}

// FuzzParseByteSize: a size that parses is not negative, prints with
// String in a form that parses to the same size, and agrees with an
// independent reading of plain numbers. Seeds are in
// testdata/fuzz/FuzzParseByteSize.
func FuzzParseByteSize(f *testing.F) {
	for _, s := range []string{"10MiB", "64K", "1000", " 2 GiB ", "-1", "9223372036854775807", "4611686018427387904B", "1e3", "0x10"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseByteSize(s)
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("%q: negative size %d", s, n)
		}
		back, err := ParseByteSize(n.String())
		if err != nil || back != n {
			t.Fatalf("%q = %d, printed %q, which parses to %d, %v", s, n, n.String(), back, err)
		}
		if plain, err := strconv.ParseInt(s, 10, 64); err == nil && plain != int64(n) {
			t.Fatalf("%q: %d, but it is the number %d", s, n, plain)
		}
	})
}

// FuzzParseListen: a socket spec that parses gives a network and address
// that net.Listen takes in form (host:port with a port in range, or an
// absolute path), and writing them back as a spec gives the same.
// Seeds are in testdata/fuzz/FuzzParseListen.
func FuzzParseListen(f *testing.F) {
	for _, s := range []string{"inet:127.0.0.1:7357", "inet6:[::1]:7357", "unix:/run/avmilter/avmilter.sock", "local:/x", "inet:host:99999", "inet::", "unix:rel", "tcp:1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		network, addr, err := ParseListen(spec)
		if err != nil {
			return
		}
		var kind string
		switch network {
		case "tcp4", "tcp6":
			kind = map[string]string{"tcp4": "inet", "tcp6": "inet6"}[network]
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("%q: address %q: %v", spec, addr, err)
			}
			if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
				t.Fatalf("%q: port %q", spec, port)
			}
		case "unix":
			kind = "unix"
			if !filepath.IsAbs(addr) {
				t.Fatalf("%q: relative socket path %q", spec, addr)
			}
		default:
			t.Fatalf("%q: network %q", spec, network)
		}
		n2, a2, err := ParseListen(kind + ":" + addr)
		if err != nil || n2 != network || a2 != addr {
			t.Fatalf("%q → %s %s; written back %s:%s → %s %s, %v", spec, network, addr, kind, addr, n2, a2, err)
		}
	})
}

// FuzzParseMode: a socket_mode that parses is a permission mode (nothing
// above 0777), and its octal form parses to the same mode. Seeds are in
// testdata/fuzz/FuzzParseMode.
func FuzzParseMode(f *testing.F) {
	for _, s := range []string{"0660", "660", "0777", "01777", "8", "", "+7", "0o660"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseMode(s)
		if err != nil {
			return
		}
		if m&^0o777 != 0 {
			t.Fatalf("%q: mode %o has bits beyond the permissions", s, m)
		}
		back, err := parseMode(fmt.Sprintf("%04o", uint32(m)))
		if err != nil || back != m {
			t.Fatalf("%q = %o, written back %04o → %o, %v", s, m, uint32(m), back, err)
		}
	})
}
