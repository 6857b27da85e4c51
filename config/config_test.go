package config

import (
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadMilterProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings, one per expected problem, in order
	}{
		{"unknown key has its line", "listen: inet:127.0.0.1:1\nlists: [{match: a@b}]\nscna_all: true\n",
			[]string{"line 3: key \"scna_all\" is not a known setting"}},
		{"nested unknown key", "lists:\n  - match: a@b\n    nmae: X\n",
			[]string{"line 3: key \"nmae\" is not a known setting"}},
		{"every problem at once, with lines", strings.Join([]string{
			"listen: tcp:1.2.3.4",
			"lists:",
			"  - match: nodomain",
			"stations: [ftp://x]",
			"policy:",
			"  actions: {infected: {action: accept}}",
			"scan_timeout: -1s",
		}, "\n"), []string{
			"line 1: listen: \"tcp:1.2.3.4\": unknown socket type \"tcp\"",
			"line 3: lists[0].match: \"nodomain\" is not a list pattern",
			"line 4: stations[0]: \"ftp://x\": the scheme must be http or https",
			"secret_file: stations are set but secret_file is not",
			"line 7: scan_timeout: must be positive",
			"line 6: policy.actions.infected.action: \"accept\" is not an action",
		}},
		{"nothing to scan", "listen: inet:127.0.0.1:1\n", []string{"lists: no list patterns and scan_all is off"}},
		{"bad size", "lists: [{match: a@b}]\nmemory_buffer: 10 parsecs\n", []string{"line 2: \"10 parsecs\" is not a size"}},
		{"bad duration", "lists: [{match: a@b}]\nscan_timeout: soon\n", []string{"line 2:"}},
		{"bad yaml", "lists: [\n", []string{"did not find expected"}},
		{"recipient patterns and delimiter", "lists:\n  - match: \"*@bad..example\"\n  - match: \"*@bücher.example\"\nhold: [\"x@[300.1.1.1]\", \"*@xn--bcher-kva.example\", \"a(b)@x.example\"]\nrecipient_delimiter: \"@\"\n",
			[]string{"line 2: lists[0].match: \"*@bad..example\": the domain is not one", "line 4: hold[0]: \"x@[300.1.1.1]\": the domain is not one",
				"line 4: hold[2]: \"a(b)@x.example\": the local part", "line 5: recipient_delimiter: \"@\": a delimiter cannot be @"}},
		{"in-process scanner checked", "lists: [{match: a@b}]\nscanner:\n  clamd: [\"tcp:nowhere\"]\n  max_depth: 0\n",
			[]string{"line 3: scanner.clamd[0]:", "line 4: scanner.max_depth: must be at least 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadMilter(write(t, tt.yaml))
			p, ok := err.(*Problems)
			if !ok {
				t.Fatalf("err = %v (%T), want *Problems", err, err)
			}
			if len(p.List) != len(tt.want) {
				t.Fatalf("got %d problems, want %d:\n%s", len(p.List), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("problems do not mention %q:\n%s", w, err)
				}
			}
		})
	}
}

func TestLoadMilterDefaultsAndValues(t *testing.T) {
	cfg, err := LoadMilter(write(t, "lists: [{match: \"*@lists.example.org\"}]\nmemory_buffer: 2MiB\nscan_timeout: 30s\npolicy:\n  actions:\n    infected: {action: tag}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MemoryBuffer != 2<<20 || cfg.ScanTimeout != 30*time.Second || cfg.Policy.Actions.Infected.Action != "tag" {
		t.Errorf("values not read: %+v", cfg)
	}
	if cfg.Policy.Actions.StationFailure.Action != "tempfail" || !cfg.Policy.Headers || cfg.Listen != "inet:127.0.0.1:7357" {
		t.Errorf("defaults lost: %+v", cfg)
	}
}

func TestExamplesPass(t *testing.T) {
	files, _ := filepath.Glob("../deploy/examples/*.yaml")
	if len(files) == 0 {
		t.Fatal("no example configs found")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			var err error
			if strings.Contains(f, "avstation") {
				_, err = LoadStation(f)
			} else {
				_, err = LoadMilter(f)
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
}

func TestLoadStationProblems(t *testing.T) {
	_, err := LoadStation(write(t, "listen: nope\ntls_cert: /x\nmax_concurrent: 0\n"))
	for _, w := range []string{"line 1: listen:", "line 2: tls_cert: tls_cert and tls_key go together", "secret_file: required", "line 3: max_concurrent"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("problems do not mention %q:\n%v", w, err)
		}
	}
}

func TestParseListen(t *testing.T) {
	tests := []struct{ spec, network, addr, err string }{
		{"inet:127.0.0.1:7357", "tcp4", "127.0.0.1:7357", ""},
		{"inet6:[::1]:7357", "tcp6", "[::1]:7357", ""},
		{"unix:/run/avmilter/s.sock", "unix", "/run/avmilter/s.sock", ""},
		{"local:/run/s", "unix", "/run/s", ""},
		{"unix:relative.sock", "", "", "absolute path"},
		{"inet:127.0.0.1", "", "", "missing port"},
		{"inet:127.0.0.1:99999", "", "", "port \"99999\""},
		{"7357", "", "", "is not a socket"},
		{"tcp:1.2.3.4:5", "", "", "unknown socket type"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			n, a, err := ParseListen(tt.spec)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || n != tt.network || a != tt.addr {
				t.Errorf("= %q %q %v", n, a, err)
			}
		})
	}
}

func TestByteSize(t *testing.T) {
	for in, want := range map[string]ByteSize{"1024": 1024, "1KiB": 1024, "64K": 64 << 10, "10MiB": 10 << 20, "1GB": 1e9, "5 MB": 5e6, "0": 0} {
		if got, err := ParseByteSize(in); err != nil || got != want {
			t.Errorf("ParseByteSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "-1", "1.5MiB", "MiB", "1TiB"} {
		if _, err := ParseByteSize(in); err == nil {
			t.Errorf("ParseByteSize(%q) took it", in)
		}
	}
	if s := ByteSize(64 << 20).String(); s != "64MiB" {
		t.Errorf("String = %q", s)
	}
}

// TestReadmeReference keeps README's settings tables equal to the code's.
// After changing a setting, regenerate them with: go test ./config -run Readme -update
func TestReadmeReference(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(readme)
	for _, sec := range []struct{ marker, table string }{
		{"avmilter", MilterReference()},
		{"avstation", StationReference()},
	} {
		begin, end := "<!-- reference:"+sec.marker+" -->\n", "<!-- end reference:"+sec.marker+" -->"
		i, j := strings.Index(text, begin), strings.Index(text, end)
		if i < 0 || j < i {
			t.Fatalf("README.md has no %q ... %q section", begin, end)
		}
		if got := text[i+len(begin) : j]; got != sec.table {
			if *update {
				text = text[:i+len(begin)] + sec.table + text[j:]
				continue
			}
			t.Errorf("README.md's %s settings differ from the code; run: go test ./config -run Readme -update\nwant:\n%s", sec.marker, sec.table)
		}
	}
	if *update {
		if err := os.WriteFile("../README.md", []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var update = flag.Bool("update", false, "rewrite README.md's settings reference")

func TestExternalScannerProblems(t *testing.T) {
	_, err := LoadStation(write(t, `secret_file: /s
scanner:
  clamd: []
  external:
    - name: fake
      path: bin/scan
      args: [--all]
      infected_codes: [1]
      clean_codes: [1]
`))
	for _, w := range []string{"line 6: scanner.external[0].path: \"bin/scan\" is not absolute", "line 7: scanner.external[0].args: no argument contains {file}", "line 8: scanner.external[0].infected_codes: 1 is also in clean_codes"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("problems do not mention %q:\n%v", w, err)
		}
	}
}

func TestListPolicies(t *testing.T) {
	cfg, err := LoadMilter(write(t, `lists: [{match: "*@lists.example.org"}]
policy:
  headers: false
  actions: {infected: {action: reject, quarantine: true}}
quarantine: {dir: /var/spool/q}
list_policies:
  chat:
    actions: {infected: {action: tag}}
`))
	if err != nil {
		t.Fatal(err)
	}
	chat := cfg.Policies.For("chat")
	if chat.Actions.Infected.Action != "tag" || chat.Headers || chat.Actions.StationFailure.Action != "tempfail" {
		t.Errorf("chat's policy %+v: want infected tag, the rest inherited", chat)
	}
	if g := cfg.Policies.For("other"); g.Actions.Infected.Action != "reject" {
		t.Errorf("other list: %+v", g.Actions)
	}
	_, err = LoadMilter(write(t, "lists: [{match: a@b}]\nlist_policies:\n  chat:\n    actoins: {}\n    actions: {infected: {action: nope}}\n"))
	for _, w := range []string{`line 4: key "actoins" is not a known setting`, `line 5: list_policies.chat.actions.infected.action: "nope"`} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("problems do not mention %q:\n%v", w, err)
		}
	}
}

func TestListPoliciesGlobalOnlySettings(t *testing.T) {
	for _, setting := range []string{"max_scan_size: 1MiB", "trusted_networks: [192.0.2.0/24]", "apply_to_outgoing: false"} {
		_, err := LoadMilter(write(t, "lists: [{match: a@b}]\nlist_policies:\n  chat:\n    "+setting+"\n"))
		if err == nil || !strings.Contains(err.Error(), "line 3: list_policies.chat: max_scan_size, apply_to_outgoing, trusted_networks and local_domains apply to the whole message") {
			t.Errorf("%s: err = %v", setting, err)
		}
	}
}

func TestTrustedNetworks(t *testing.T) {
	_, err := LoadMilter(write(t, "lists: [{match: a@b}]\npolicy:\n  trusted_networks:\n    - 10.0.0.0/8\n    - 192.0.2.1/24\n"))
	if err == nil || !strings.Contains(err.Error(), `line 5: policy.trusted_networks[1]: "192.0.2.1/24" has host bits set; did you mean 192.0.2.0/24?`) {
		t.Errorf("err = %v", err)
	}
	cfg, err := LoadMilter(write(t, "lists: [{match: a@b}]\nbypass_trusts_envelope: true\npolicy:\n  trusted_networks: [127.0.0.1]\n"))
	if err != nil || !cfg.BypassTrustsEnvelope || !cfg.Policies.Global().TrustedClient(netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("cfg %+v, %v", cfg, err)
	}
}
