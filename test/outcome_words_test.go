package test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/test/harness"
)

// TestWordsAndCopiesFitTheOutcome, through real Postfix and clamd: a
// stripped banned file is not described as a virus, and with
// quarantine.contents: attachments a rejected or discarded message leaves
// only its offending part in the quarantine.
func TestWordsAndCopiesFitTheOutcome(t *testing.T) {
	clamd := harness.StartClamd(t)
	sink := harness.StartSink(t)
	notes := harness.Attachment{Name: "notes.txt", ContentType: "text/plain", Data: []byte("agenda: 1. budget 2. party\n")}
	setup := harness.Attachment{Name: "setup.exe", ContentType: "application/octet-stream", Data: []byte("MZ harmless but banned")}
	milterWith := func(t *testing.T, policy, extra string) *chain {
		return newChain(t, sink, harness.StartMilter(t, bin.Milter, harness.MilterOptions{Clamd: clamd.Addr, Policy: policy, Extra: extra}))
	}

	t.Run("a stripped banned file is said to be of a type not accepted", func(t *testing.T) {
		c := milterWith(t, "  actions: {banned-name: {action: strip}}\n  extension_filters:\n    rules: [{mask: \"*.exe\", action: block}]\n", "")
		wantCode(t, c.send(t, listRcp, "banned stripped", notes, setup), 250)
		d := c.delivered(t, "banned stripped")
		if !bytes.Contains(d.Data, []byte("The attachment 'setup.exe' was removed because files of its type are not accepted here.")) {
			t.Errorf("no fitting note in:\n%s", d.Data)
		}
		if bytes.Contains(bytes.ToLower(d.Data), []byte("virus '")) || bytes.Contains(d.Data, []byte("contained a virus")) {
			t.Errorf("a banned file is described as a virus:\n%s", d.Data)
		}
	})

	for _, action := range []string{"reject", "discard"} {
		t.Run("quarantine keeps only the offending part on "+action, func(t *testing.T) {
			qdir := filepath.Join(t.TempDir(), "quarantine")
			c := milterWith(t, "  actions: {infected: {action: "+action+", quarantine: true}}\n",
				"quarantine:\n  dir: "+qdir+"\n  contents: attachments\n")
			r := c.send(t, listRcp, "offending part on "+action, notes, eicarAttachment())
			if action == "reject" {
				wantCode(t, r, 550)
			} else {
				wantCode(t, r, 250)
			}
			line := c.milter.WaitLog(t, 5*time.Second, "outcome=infected", "action="+action, "quarantine=")
			id := field(line, "quarantine")
			kept, err := os.ReadFile(filepath.Join(qdir, id+".eml"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(kept, []byte("eicar.com")) || bytes.Contains(kept, []byte("agenda")) || bytes.Contains(kept, []byte("Hello list")) {
				t.Errorf("the quarantine holds more than the infected part:\n%s", kept)
			}
			rec, err := os.ReadFile(filepath.Join(qdir, id+".json"))
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Parts []string `json:"parts"`
			}
			if err := json.Unmarshal(rec, &got); err != nil || strings.Join(got.Parts, ",") != "3" {
				t.Errorf("record parts %q (%v), want [3]: %s", got.Parts, err, rec)
			}
		})
	}
}
