package scanner

import (
	"context"
	"encoding/base64"
	"io"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/verdict"
)

// alertClamd answers like a clamd with AlertExceedsMax and AlertEncrypted
// on: the first rule whose marker is in the stream gives the reply line,
// which goes through the real reply parser and engine adapter. Like
// clamd, it decodes the base64 of a raw message (here: each line that is
// base64), so that it finds in the raw message what it finds in a part.
type alertClamd struct{ rules [][2]string } // marker, reply

func (c alertClamd) Scan(ctx context.Context, r io.Reader) (clamd.Result, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return clamd.Result{}, err
	}
	for line := range strings.SplitSeq(string(b), "\r\n") {
		if d, err := base64.StdEncoding.DecodeString(line); err == nil && len(line) > 0 {
			b = append(b, d...)
		}
	}
	for _, rule := range c.rules {
		if strings.Contains(string(b), rule[0]) {
			return clamd.ParseScanReply(rule[1])
		}
	}
	return clamd.ParseScanReply("stream: OK")
}

func (c alertClamd) Version(ctx context.Context) (clamd.Version, error) {
	return clamd.Version{Engine: "ClamAV 1.4.6", Database: "1"}, nil
}

// TestClamdAlerts: clamd's own limit and encryption alerts are
// limit-exceeded and encrypted findings, not viruses named "Heuristics...";
// an encrypted archive the scanner opened with a password from the text
// is judged by its decrypted members, whatever clamd (which has no
// password) says about the archive and the raw message.
func TestClamdAlerts(t *testing.T) {
	secretClean := string(zipCrypto(t, "plan.txt", "the plan", "s3cret"))
	secretEvil := string(zipCrypto(t, "evil.exe", "EVIL inside", "s3cret"))
	otherPw := string(zipCrypto(t, "notes.txt", "notes", "otherpw"))
	// clamd sees the encrypted zip both as the decoded part and, decoding
	// the MIME itself, in the raw message, where it is base64.
	encRules := func(zips ...string) [][2]string {
		r := [][2]string{{"EVIL", "stream: Eicar-Test-Signature FOUND"}}
		for _, z := range zips {
			r = append(r, [2]string{z, "stream: Heuristics.Encrypted.Zip FOUND"}, [2]string{b64(z), "stream: Heuristics.Encrypted.Zip FOUND"})
		}
		return r
	}
	tests := []struct {
		name   string
		rules  [][2]string
		text   string
		atts   []string
		status verdict.Status
		// the first finding of status: path, engine, text in threat or detail
		path, engine, want string
		threat             string // its Threat exactly
	}{
		{"past clamd's MaxFileSize", [][2]string{{"BIGPART", "stream: Heuristics.Limits.Exceeded.MaxFileSize FOUND"}},
			"hello list", []string{attachment("big.bin", "BIGPART")}, verdict.LimitExceeded, "2", "clamd", "clamd MaxFileSize", ""},
		{"past clamd's MaxRecursion", [][2]string{{"DEEP", "stream: Heuristics.Limits.Exceeded.MaxRecursion FOUND"}},
			"hello list", []string{attachment("deep.bin", "DEEP")}, verdict.LimitExceeded, "2", "clamd", "clamd MaxRecursion", ""},
		{"past an unnamed clamd limit", [][2]string{{"X", "stream: Heuristics.Limits.Exceeded FOUND"}},
			"hello list", []string{attachment("x.bin", "X")}, verdict.LimitExceeded, "2", "clamd", "clamd limits", ""},
		{"a real virus outranks a limit", [][2]string{{"EVIL", "stream: Eicar-Test-Signature FOUND"}, {"BIG", "stream: Heuristics.Limits.Exceeded.MaxScanSize FOUND"}},
			"hello list", []string{attachment("big.bin", "BIG"), attachment("eicar.com", "EVIL")}, verdict.Infected, "3", "clamd", "Eicar", "Eicar-Test-Signature"},
		{"other heuristics are threats", [][2]string{{"PHISH", "stream: Heuristics.Phishing.Email.SpoofedDomain FOUND"}},
			"hello list", []string{attachment("a.html", "PHISH")}, verdict.Infected, "2", "clamd", "Phishing", "Heuristics.Phishing.Email.SpoofedDomain"},
		{"encrypted pdf clamd alone saw", [][2]string{{"%PDF", "stream: Heuristics.Encrypted.PDF FOUND"}},
			"hello list", []string{attachment("a.pdf", "%PDF-1.7 x")}, verdict.Encrypted, "2", "clamd", "encrypted PDF", ""},
		{"encrypted zip, no password in the text", encRules(secretClean),
			"hello list", []string{attachment("secret.zip", secretClean)}, verdict.Encrypted, "2/secret.zip/plan.txt", "", "ZipCrypto", ""},
		{"encrypted zip opened with the password in the text, clean", encRules(secretClean),
			"the password is s3cret", []string{attachment("secret.zip", secretClean)}, verdict.Clean, "", "", "", ""},
		{"encrypted zip opened with the password in the text, virus inside", encRules(secretEvil),
			"the password is s3cret", []string{attachment("secret.zip", secretEvil)}, verdict.Infected, "2/secret.zip/evil.exe", "clamd", "Eicar", "Eicar-Test-Signature"},
		{"one zip opened, another not", encRules(secretClean, otherPw),
			"the password is s3cret", []string{attachment("secret.zip", secretClean), attachment("other.zip", otherPw)},
			verdict.Encrypted, "3/other.zip/notes.txt", "", "ZipCrypto", ""},
		{"zip opened, but clamd's alert is about a RAR", [][2]string{{"From:", "stream: Heuristics.Encrypted.RAR FOUND"}},
			"the password is s3cret", []string{attachment("secret.zip", secretClean)}, verdict.Encrypted, "", "clamd", "encrypted RAR", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parts := append([]string{"Content-Type: text/plain\n\n" + tt.text}, tt.atts...)
			v := scan(t, Options{TryPasswords: true, Mode: ModeAll}, Clamd(alertClamd{tt.rules}), multipart(parts...))
			if v.Status != tt.status {
				t.Fatalf("status %q, want %q: %+v", v.Status, tt.status, v.Findings)
			}
			for _, f := range v.Findings {
				if f.Kind == verdict.KindVirus && strings.HasPrefix(f.Threat, "Heuristics.Limits") || strings.HasPrefix(f.Threat, "Heuristics.Encrypted") {
					t.Errorf("clamd's alert taken for a virus: %+v", f)
				}
			}
			if tt.status == verdict.Clean {
				if len(v.Findings) != 0 {
					t.Errorf("findings %+v, want none", v.Findings)
				}
				return
			}
			if tt.name == "one zip opened, another not" {
				// secret.zip's alert is explained, the raw message's is not:
				// other.zip stayed closed.
				var at []string
				for _, f := range v.Findings {
					if f.Engine == "clamd" {
						at = append(at, f.Path)
					}
				}
				if strings.Join(at, ",") != "3," {
					t.Errorf("clamd's encrypted alerts kept at %q, want 3 and the raw message", at)
				}
			}
			f, _ := v.First(tt.status)
			if f.Path != tt.path || f.Engine != tt.engine || !strings.Contains(f.Threat+f.Detail+f.Raw, tt.want) || f.Threat != tt.threat {
				t.Errorf("finding %+v, want path %q, engine %q, %q, threat %q", f, tt.path, tt.engine, tt.want, tt.threat)
			}
		})
	}
}
