package jobproto

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeSecret(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadSecretFileMode(t *testing.T) {
	tests := []struct {
		mode    os.FileMode
		wantErr string
	}{
		{0o600, ""},
		{0o400, ""},
		{0o644, "mode 0644 is readable by group or others; run: chmod 600 "},
		{0o640, "mode 0640 is readable by group or others"},
		{0o604, "mode 0604 is readable by group or others"},
		{0o620, "mode 0620 is open to group or others"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%04o", tt.mode), func(t *testing.T) {
			p := writeSecret(t, "s3cret-word\n", tt.mode)
			r, err := LoadSecretFile(p)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if k := r.Signer(); k.ID != "default" || string(k.Secret) != "s3cret-word" {
					t.Errorf("key %s", k)
				}
				return
			}
			if err == nil {
				t.Fatal("loaded")
			}
			want := "secret file " + p + ": " + tt.wantErr
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q, want prefix %q", err, want)
			}
			if tt.mode == 0o644 && !strings.HasSuffix(err.Error(), "chmod 600 "+p) {
				t.Errorf("error %q lacks the chmod hint", err)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q shows the secret", err)
			}
		})
	}
}

func TestLoadSecretFileMissing(t *testing.T) {
	_, err := LoadSecretFile(filepath.Join(t.TempDir(), "none"))
	if err == nil || !strings.Contains(err.Error(), "secret file") {
		t.Fatalf("error %v", err)
	}
	_, err = LoadSecretFile(t.TempDir())
	if err == nil {
		t.Fatal("loaded a directory")
	}
}

func TestParseSecrets(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []string // id=secret, in order
		wantErr string
	}{
		{name: "one secret", content: "s3cret-one\n", want: []string{"default=s3cret-one"}},
		{name: "no final newline", content: "s3cret-one", want: []string{"default=s3cret-one"}},
		{name: "CRLF", content: "k1 s3cret-one\r\nk2\ts3cret-two\r\n", want: []string{"k1=s3cret-one", "k2=s3cret-two"}},
		{
			name:    "comments and blanks",
			content: "# the secret word\n\n   \n  # indented comment\nnew s3cret-new\nold s3cret-old\n",
			want:    []string{"new=s3cret-new", "old=s3cret-old"},
		},
		{name: "default and named", content: "s3cret-d\nk2 s3cret-two\n", want: []string{"default=s3cret-d", "k2=s3cret-two"}},
		{name: "empty", content: "", wantErr: "no key"},
		{name: "only comments", content: "# x\n\n", wantErr: "no key"},
		{name: "three fields", content: "# c\nk1 s3cret-one\nk2 s3cret-two s3cret-three\n", wantErr: "line 3: 3 fields"},
		{name: "bad key id", content: "s3cret/x s3cret-two\n", wantErr: "line 1: key id must be"},
		{name: "duplicate id", content: "k1 s3cret-one\n\nk1 s3cret-two\n", wantErr: "line 3: same key id as line 1"},
		{name: "two defaults", content: "s3cret-one\ns3cret-two\n", wantErr: "line 2: same key id as line 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := parseSecrets("/etc/avstation/secret", []byte(tt.content))
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), "secret file /etc/avstation/secret: "+tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Errorf("error %q shows a secret", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, id := range r.IDs() {
				k, _ := r.Lookup(id)
				got = append(got, id+"="+string(k.Secret))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("keys %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNewKeyRing(t *testing.T) {
	tests := []struct {
		name    string
		keys    []Key
		wantErr string
	}{
		{name: "empty", wantErr: "no key"},
		{name: "empty secret", keys: []Key{{ID: "a"}}, wantErr: "empty secret"},
		{name: "duplicate", keys: []Key{keyA, keyA}, wantErr: "appears twice"},
		{name: "bad id", keys: []Key{{ID: "a b", Secret: []byte("x")}}, wantErr: "id must be"},
		{name: "ok", keys: []Key{keyB, keyA}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := NewKeyRing(tt.keys...)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Signer().ID != "b" {
				t.Errorf("signer %s", r.Signer())
			}
		})
	}
}

// TestKeysNeverPrinted: however a key or ring is printed or logged, the
// secret does not show.
func TestKeysNeverPrinted(t *testing.T) {
	r := ring(t, keyA, keyB)
	var sb strings.Builder
	log := slog.New(slog.NewTextHandler(&sb, nil))
	log.Info("keys", "ring", r, "key", keyA)
	out := sb.String()
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%x", "%d", "%q"} {
		out += fmt.Sprintf(verb, keyA) + fmt.Sprintf(verb, r) + fmt.Sprintf(verb, *r) + fmt.Sprintf(verb, []Key{keyA})
	}
	for _, s := range []string{secretA, secretB, fmt.Sprint([]byte(secretA)), fmt.Sprintf("%x", secretA)} {
		if strings.Contains(out, s) {
			t.Fatalf("secret printed: %s", out)
		}
	}
}
