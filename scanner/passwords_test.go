package scanner

import (
	"reflect"
	"strings"
	"testing"
)

func TestCandidatesIn(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"Hi, the invoice is attached. The password is Invoice2024.", []string{"Invoice2024", "Invoice2024."}},
		{"Password: s3cr3t!", []string{"s3cr3t", "s3cr3t!"}},
		{"Das Passwort lautet \"Rechnung77\"", []string{"Rechnung77"}},
		{"mot de passe : bonjour123", []string{"bonjour123"}},
		{"La contraseña es hola2024", []string{"hola2024"}},
		{"pw=abc", []string{"abc"}},
		{"no secrets here, just a passwordless note", nil},
		{"password is a", nil}, // too short
		{"password:\n\n  ZXCV-1234 and more", []string{"ZXCV-1234"}},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			if got := candidatesIn(tt.text); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("candidatesIn(%q) = %q, want %q", tt.text, got, tt.want)
			}
		})
	}
}

func TestPasswordCandidatesFromMessage(t *testing.T) {
	msg := crlf(multipart(
		"Content-Type: text/html\n\n<p>Your file: the <b>password</b> is <i>Hunter22</i></p>",
		attachment("secret.zip", "not really a zip"),
		"Content-Type: text/plain\n\nPassword: second-one",
	))
	ix, err := New(DefaultOptions()).newIndex(strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.close()
	got := passwordCandidates(ix)
	want := []string{"Hunter22", "second-one"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("candidates %q, want %q", got, want)
	}
}
