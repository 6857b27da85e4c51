package config

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestConfigTraps: settings that load but do not do what they look like
// are refused, each problem naming its line and key and giving the fix.
func TestConfigTraps(t *testing.T) {
	const lists = "lists: [{match: \"*@lists.example.org\"}]\n"
	tests := []struct {
		name string
		yaml string // after the lists line (line 1)
		want []string
	}{
		{"quarantine dir and address", "quarantine:\n  dir: /var/spool/avmilter/q\n  address: virus@example.org\n  smtp: 127.0.0.1:25\n",
			[]string{"line 4: quarantine.address: quarantine.dir and quarantine.address are both set; set one: dir keeps messages here"}},
		{"extension without *.", "policy:\n  extension_filters:\n    rules:\n      - {mask: exe, action: block}\n",
			[]string{`line 5: policy.extension_filters.rules[0].mask: "exe": exe matches only a file named exactly that, not every file with that extension; write *.exe`}},
		{"extension without *. in a list's policy", "list_policies:\n  chat:\n    extension_filters:\n      rules: [{mask: \"*.scr;.com\", archived_in: zip, action: block}]\n",
			[]string{`line 5: list_policies.chat.extension_filters.rules[0].archived_in: "zip": zip matches only`,
				`line 5: list_policies.chat.extension_filters.rules[0].mask: "*.scr;.com": .com matches only a file named exactly that, not every file with that extension; write *.com`}},
		{"bypass kind", "notify:\n  bypass:\n    owners: [\"*@example.org\"]\n",
			[]string{`line 4: notify.bypass.owners: "owners" is not a recipient kind; use admin, owner, recipient or sender`}},
		{"bypass malformed pattern", "notify:\n  bypass:\n    sender:\n      - \"[a-\"\n",
			[]string{`line 5: notify.bypass.sender[0]: "[a-" is not a pattern (syntax error in pattern)`}},
		{"bypass pattern that matches no address", "notify:\n  bypass:\n    recipient: [example.org, noreply, \"*@ok.example\"]\n",
			[]string{`line 4: notify.bypass.recipient[0]: "example.org" has no @ and no wildcard, so it matches no address; did you mean *@example.org?`,
				`line 4: notify.bypass.recipient[1]: "noreply" has no @ and no wildcard, so it matches no address; did you mean noreply@*?`}},
		{"template kind", "notify:\n  templates:\n    admins: {subject: hello}\n",
			[]string{`line 4: notify.templates.admins: "admins" is not a recipient kind`}},
		{"relative activity_dir", "activity_dir: activity\n",
			[]string{`line 2: activity_dir: "activity" is not an absolute directory path; write one (default /var/lib/avmilter/activity), or off to keep no activity log`}},
		{"hung station found too late", "stations: [\"http://127.0.0.1:7358\", \"http://127.0.0.1:7359\"]\nsecret_file: /etc/avmilter/secret\nscan_timeout: 11s\nstation_probe_after: 4s\n",
			[]string{`line 5: station_probe_after: station_probe_after 4s + station_probe_timeout 2s = 6s: a hung station would not be found with half of scan_timeout 11s left for the next station; lower them (e.g. 3s and 2s) or raise scan_timeout`}},
		{"hung station probe without a timeout", "stations: [\"http://127.0.0.1:7358\"]\nsecret_file: /etc/avmilter/secret\nstation_probe_timeout: 0s\n",
			[]string{`line 4: station_probe_timeout: must be positive (e.g. 2s)`}},
		{"OFF is not off", "activity_dir: OFF\n", []string{`line 2: activity_dir: "OFF" is not an absolute directory path`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadMilter(write(t, lists+tt.yaml))
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

// TestConfigWarnings: a placeholder that is none of the template's loads
// (the notice goes out with it as written) but is warned about, and the
// warnings ride along with the problems when there are some.
func TestConfigWarnings(t *testing.T) {
	text := "lists: [{match: a@b}]\nnotify:\n  templates:\n    owner:\n      subject: \"%%Virus%% in %%List%%\"\n      body: \"%%FileName%% %%Sendr%% %%QueueID%%\"\n"
	path := write(t, text)
	cfg, err := LoadMilter(path)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		path + ": line 5: notify.templates.owner.subject: %%Virus%% is not a placeholder and is sent as written",
		path + ": line 6: notify.templates.owner.body: %%Sendr%% is not a placeholder",
	}
	if len(cfg.Warnings) != len(want) {
		t.Fatalf("warnings %q, want %d", cfg.Warnings, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(cfg.Warnings[i], w) {
			t.Errorf("warning %d = %q, want %q", i, cfg.Warnings[i], w)
		}
	}
	if cfg, err := LoadMilter(write(t, "lists: [{match: a@b}]\n")); err != nil || len(cfg.Warnings) != 0 {
		t.Errorf("a plain config: %v, warnings %q", err, cfg.Warnings)
	}
	_, err = LoadMilter(write(t, text+"scan_timeout: 0s\n"))
	if err == nil || !strings.Contains(err.Error(), "1 problem(s):\n  line 7: scan_timeout") ||
		!strings.Contains(err.Error(), "2 warning(s):\n  line 5: notify.templates.owner.subject: %%Virus%%") {
		t.Errorf("err = %v", err)
	}
}

// TestStateDirDefaults: forensics are on without a word in the config;
// "" means the default too, off turns each off.
func TestStateDirDefaults(t *testing.T) {
	tests := []struct {
		name, yaml string
		activity   string
	}{
		{"not set", "", DefaultActivityDir},
		{"empty", "activity_dir: \"\"\n", DefaultActivityDir},
		{"null", "activity_dir:\n", DefaultActivityDir},
		{"off", "activity_dir: off\n", ""},
		{"quoted off", "activity_dir: \"off\"\n", ""},
		{"a path", "activity_dir: /srv/activity\n", "/srv/activity"},
	}
	for _, tt := range tests {
		t.Run("avmilter "+tt.name, func(t *testing.T) {
			cfg, err := LoadMilter(write(t, "lists: [{match: a@b}]\n"+tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ActivityDir != tt.activity {
				t.Errorf("activity_dir = %q, want %q", cfg.ActivityDir, tt.activity)
			}
		})
		t.Run("avstation "+tt.name, func(t *testing.T) {
			yaml := strings.ReplaceAll(tt.yaml, "activity_dir", "records_dir")
			want := strings.ReplaceAll(tt.activity, DefaultActivityDir, DefaultRecordsDir)
			cfg, err := LoadStation(write(t, "secret_file: /s\n"+yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.RecordsDir != want || cfg.RecordsMaxAge != 30*24*time.Hour {
				t.Errorf("records_dir = %q, records_max_age %s; want %q, 720h", cfg.RecordsDir, cfg.RecordsMaxAge, want)
			}
		})
	}
	// A config made in code writes nowhere until told to.
	if d := DefaultMilter().ActivityDir; d != "" {
		t.Errorf("DefaultMilter().ActivityDir = %q, want empty (off)", d)
	}
	if d := DefaultStation().RecordsDir; d != "" {
		t.Errorf("DefaultStation().RecordsDir = %q, want empty (off)", d)
	}
	// README's table shows the default tags: they must be the loader's.
	for _, c := range []struct {
		typ   reflect.Type
		field string
		want  string
	}{{reflect.TypeFor[Milter](), "ActivityDir", DefaultActivityDir}, {reflect.TypeFor[Station](), "RecordsDir", DefaultRecordsDir}} {
		f, _ := c.typ.FieldByName(c.field)
		if got := f.Tag.Get("default"); got != c.want {
			t.Errorf("%s.%s default tag %q, want %q", c.typ.Name(), c.field, got, c.want)
		}
	}
}

func TestStationRecordsSettings(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"old name", "records_keep: 240h\n", `line 2: key "records_keep" was renamed to records_max_age; write records_max_age instead`},
		{"too short", "records_max_age: 30m\n", "line 2: records_max_age: must be at least 1h"},
		{"relative", "records_dir: records\n", `line 2: records_dir: "records" is not an absolute directory path; write one (default /var/lib/avstation/records), or off to keep no job records`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := LoadStation(write(t, "secret_file: /s\n"+tt.yaml))
			if p, ok := err.(*Problems); !ok || len(p.List) != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want one problem %q", err, tt.want)
			}
		})
	}
	cfg, err := LoadStation(write(t, "secret_file: /s\nrecords_max_age: 48h\n"))
	if err != nil || cfg.RecordsMaxAge != 48*time.Hour {
		t.Errorf("records_max_age 48h: %v, %v", cfg, err)
	}
}

// TestEngineTimeBudget: max_engine_time is checked against engine_timeout
// and, in-process, against scan_timeout, which must leave the budget time
// to end limit-exceeded; the defaults pass both.
func TestEngineTimeBudget(t *testing.T) {
	const lists = "lists: [{match: a@b}]\n"
	tests := []struct {
		name     string
		yaml     string
		problem  string // "" none
		warnings []string
	}{
		{"defaults", "", "", nil},
		{"below 1s", "scanner:\n  max_engine_time: 500ms\n", "line 3: scanner.max_engine_time: must be at least 1s (default 1m0s)", nil},
		{"below engine_timeout", "scanner:\n  max_engine_time: 30s\n", "",
			[]string{"line 3: scanner.max_engine_time: 30s is below engine_timeout 1m0s"}},
		{"with engine_timeout above scan_timeout", "scan_timeout: 100s\n", "",
			[]string{"scanner.max_engine_time: 1m0s plus engine_timeout 1m0s is above scan_timeout 1m40s"}},
		{"stations: the station's own", "stations: [127.0.0.1]\nsecret_file: /etc/avmilter/secret\nscan_timeout: 30s\n", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := LoadMilter(write(t, lists+tt.yaml))
			if tt.problem != "" {
				if err == nil || !strings.Contains(err.Error(), tt.problem) {
					t.Fatalf("err = %v, want %q", err, tt.problem)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(cfg.Warnings) != len(tt.warnings) {
				t.Fatalf("warnings %q, want %q", cfg.Warnings, tt.warnings)
			}
			for i, w := range tt.warnings {
				if !strings.Contains(cfg.Warnings[i], w) {
					t.Errorf("warning %q, want %q", cfg.Warnings[i], w)
				}
			}
		})
	}
}
