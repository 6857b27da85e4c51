package config

import (
	"strings"
	"testing"
)

// TestReplyTextProblems: a reply text that cannot be an SMTP reply is
// refused at load, with its key and line, globally and per list.
func TestReplyTextProblems(t *testing.T) {
	yaml := strings.Join([]string{
		`lists: [{match: "*@lists.example.org"}]`,
		`policy:`,
		`  actions:`,
		`    infected: {action: reject, reply: "Virus %%Virusname%% in %%File%%"}`,
		`list_policies:`,
		`  dev:`,
		`    actions:`,
		`      banned-name: {reply: "Gesperrt: %%FileName%% – bitte zippen"}`,
	}, "\n")
	_, err := LoadMilter(write(t, yaml))
	if err == nil {
		t.Fatal("bad reply texts accepted")
	}
	for _, w := range []string{
		"line 4: policy.actions.infected.reply: %%File%% is not a placeholder; use %%List%%, %%VirusName%%, %%FileName%%, %%Reason%%",
		"line 8: list_policies.dev.actions.banned-name.reply: byte 0xe2 at 23 is not printable ASCII",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("problems do not mention %q:\n%s", w, err)
		}
	}
	ok := strings.Replace(strings.Replace(yaml, "%%File%%", "%%FileName%%", 1), " – bitte zippen", "", 1)
	cfg, err := LoadMilter(write(t, ok))
	if err != nil {
		t.Fatalf("good reply texts refused: %v", err)
	}
	if got := cfg.Policies.For("dev").Actions.BannedName.Reply; got != "Gesperrt: %%FileName%%" {
		t.Errorf("list reply = %q", got)
	}
	if got := cfg.Policies.For("dev").Actions.Infected.Reply; got != "Virus %%Virusname%% in %%FileName%%" {
		t.Errorf("list policy did not inherit the global reply: %q", got)
	}
}
