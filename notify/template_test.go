package notify

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/policy"
)

var testEvent = Event{
	Threat:     "Eicar-Signature",
	Action:     "reject",
	FileName:   "eicar.com",
	Lists:      []string{"dev-l@lists.example.org", "ann-l@lists.example.org"},
	Sender:     "alice@example.com",
	Recipients: []string{"bob@example.net", "carol@example.net"},
	QueueID:    "4ABC123",
	JobID:      "job-42",
	Outcome:    "infected",
	Time:       time.Date(2024, 3, 5, 14, 25, 10, 0, time.UTC),
}

func TestRenderPlaceholders(t *testing.T) {
	tmpl := Template{
		Subject: "%%VirusName%% from %%Sender%%",
		Body: "v=%%VirusName%% f=%%FileName%% l=%%List%% s=%%Sender%% r=%%Recipients%% " +
			"q=%%QueueID%% j=%%JobID%% d=%%Date%% o=%%Outcome%% lower=%%virusname%% x=%%Unknown%% " +
			"open=%%VirusName",
	}
	subject, body := tmpl.Render(testEvent)
	if want := "Eicar-Signature from alice@example.com"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	want := "v=Eicar-Signature f=eicar.com l=dev-l@lists.example.org, ann-l@lists.example.org " +
		"s=alice@example.com r=bob@example.net, carol@example.net q=4ABC123 j=job-42 " +
		"d=Tue, 05 Mar 2024 14:25:10 +0000 o=infected lower=Eicar-Signature x=%%Unknown%% open=%%VirusName"
	if body != want {
		t.Errorf("body =\n%q\nwant\n%q", body, want)
	}
}

func TestRenderEmptyValues(t *testing.T) {
	subject, body := Template{Subject: "%%VirusName%%|%%Sender%%", Body: "%%FileName%%|%%Date%%|%%Reason%%"}.Render(Event{Outcome: "encrypted"})
	if subject != "???|<>" {
		t.Errorf("subject = %q", subject)
	}
	if !strings.HasPrefix(body, "(none)||It contains encrypted") {
		t.Errorf("body = %q", body)
	}
}

func TestRenderInjection(t *testing.T) {
	e := testEvent
	e.Threat = "Evil\r\nBcc: victim@example.org"
	e.FileName = "a.exe\n\nDear user, please run the attachment"
	e.Sender = "x@y\rSubject: hi"
	e.Lists = []string{"%%Sender%%"} // values are not expanded again
	tmpl := Template{
		Subject: "Alert: %%VirusName%%\r\nX-Injected: %%Sender%%",
		Body:    "Threat %%VirusName%%\nFile %%FileName%%\nList %%List%%\n",
	}
	subject, body := tmpl.Render(e)
	if strings.ContainsAny(subject, "\r\n") {
		t.Errorf("subject has a line break: %q", subject)
	}
	if want := "Alert: Evil  Bcc: victim@example.org  X-Injected: x@y Subject: hi"; subject != want {
		t.Errorf("subject = %q, want %q", subject, want)
	}
	want := "Threat Evil  Bcc: victim@example.org\nFile a.exe  Dear user, please run the attachment\nList %%Sender%%\n"
	if body != want {
		t.Errorf("body = %q, want %q", body, want)
	}
}

func TestDefaultTemplates(t *testing.T) {
	tmpls := DefaultTemplates()
	for _, who := range []string{"admin", "owner", "recipient", "sender"} {
		t.Run(who, func(t *testing.T) {
			tmpl, ok := tmpls[who]
			if !ok {
				t.Fatalf("no %q template", who)
			}
			subject, body := tmpl.Render(testEvent)
			for _, s := range []string{subject, body} {
				if strings.Contains(s, "%%") {
					t.Errorf("placeholder left in %q", s)
				}
			}
			if subject == "" || body == "" {
				t.Errorf("empty subject or body")
			}
		})
	}
	_, body := tmpls["sender"].Render(testEvent)
	for _, want := range []string{"did not", "refused", "Eicar-Signature", "forged"} {
		if !strings.Contains(body, want) {
			t.Errorf("sender notice does not say %q:\n%s", want, body)
		}
	}
	if strings.Contains(strings.ToLower(body), "your computer is infected.") {
		t.Errorf("sender notice blames the sender:\n%s", body)
	}
}

// TestEveryOutcomeAndActionHasItsWords: no outcome or action falls back
// to the generic sentence.
func TestEveryOutcomeAndActionHasItsWords(t *testing.T) {
	generic := Reason("no-such-outcome", "")
	for _, o := range policy.Outcomes {
		if o == policy.OutcomeClean {
			continue
		}
		if got := Reason(string(o), ""); got == generic || strings.Contains(got, "ended with the outcome") {
			t.Errorf("outcome %s has no sentence of its own: %q", o, got)
		}
	}
	for _, a := range []policy.Action{policy.Reject, policy.Tempfail, policy.Discard, policy.Strip, policy.Tag, policy.Accept} {
		if got := Done(string(a)); got == Done("no-such-action") {
			t.Errorf("action %s has no sentence of its own: %q", a, got)
		}
	}
}

func TestReason(t *testing.T) {
	tests := []struct{ outcome, threat, want string }{
		{"infected", "Eicar", "The virus scanner reported Eicar."},
		{"infected", "", "The virus scanner reported a threat it did not name."},
		{"encrypted", "", "It contains encrypted"},
		{"limit-exceeded", "", "too large"},
		{"new-thing", "", `"new-thing"`},
	}
	for _, tt := range tests {
		if got := Reason(tt.outcome, tt.threat); !strings.Contains(got, tt.want) {
			t.Errorf("Reason(%q, %q) = %q, want it to contain %q", tt.outcome, tt.threat, got, tt.want)
		}
	}
}

func TestUnknownPlaceholders(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"%%VirusName%% in %%filename%% to %%LIST%%", nil},
		{"%%Virus%% found", []string{"Virus"}},
		{"%%Virus%%List%% %%Sender%%", []string{"Virus"}}, // "%%List%%" after it is real
		{"100%% sure, 50%% off", nil},                     // " sure, 50" is no placeholder word
		{"%%%%", nil},
		{"%%QueueId%% %%Job_ID%% %%Date2%%", []string{"Job_ID", "Date2"}},
		{"unclosed %%Virus", nil},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := UnknownPlaceholders(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("= %q, want %q", got, tt.want)
			}
		})
	}
}
