package scanner

import (
	"bufio"
	"io"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/avstation/avstation/verdict"
)

// Senders of password-protected archives usually put the password in the
// message ("the password is Invoice2024"): that is how malware gets past
// scanners that give up on encryption. The scanner collects such
// candidates from the text parts and tries them on encrypted members.
const (
	maxCandidates   = 8
	maxTextScanned  = 256 << 10 // bytes of text read for candidates, per message
	minPasswordLen  = 3
	maxPasswordLen  = 64
	candidateWindow = 4 // words after a keyword that may be the password
)

// passwordWord matches the word "password" in the languages list mail is
// mostly written in.
var passwordWord = regexp.MustCompile(`(?i)\b(password|passwort|kennwort|passwd|pwd|pw|mot de passe|contrase(ñ|n)a|senha|wachtwoord|hasło|haslo|parola|lösenord|salasana|heslo|пароль|密码|パスワード)\b`)

// filler words that sit between the keyword and the password.
var filler = map[string]bool{
	"is": true, "ist": true, "est": true, "es": true, "é": true, "is:": true, "the": true, "to": true,
	"for": true, "of": true, "file": true, "archive": true, "zip": true, "lautet": true, "das": true,
	"de": true, "le": true, "la": true, "el": true, "a": true, "=": true, "-": true, ":": true, "would": true,
	"be": true, "use": true, "please": true, "with": true, "mit": true, "avec": true, "con": true}

// passwordCandidates reads the text parts of the indexed message and returns
// the words that follow a password keyword, in order, without repeats.
// It reads headers and text only, at most maxTextScanned bytes of text.
func passwordCandidates(ix *index) []string {
	var out []string
	seen := map[string]bool{}
	budget := int64(maxTextScanned)
	// The pre-pass's own findings are thrown away: the real walk makes them.
	w := &walker{verdict: &verdict.Verdict{}, visit: func(p *leaf) error {
		if budget <= 0 || !strings.HasPrefix(p.contentType, "text/") || p.attachment && p.fileName != "" {
			return nil
		}
		text, _ := io.ReadAll(io.LimitReader(p.body, budget))
		budget -= int64(len(text))
		if p.contentType == "text/html" {
			text = []byte(stripTags(string(text)))
		}
		for _, c := range candidatesIn(string(text)) {
			if !seen[c] && len(out) < maxCandidates {
				seen[c] = true
				out = append(out, c)
			}
		}
		return nil
	}}
	w.walk(ix)
	return out
}

// candidatesIn finds password candidates in one text: for each keyword,
// the first word within a few words after it that looks like a password
// (not a filler word), taken with and without trailing punctuation.
func candidatesIn(text string) []string {
	var out []string
	for _, loc := range passwordWord.FindAllStringIndex(text, -1) {
		rest := text[loc[1]:]
		if len(rest) > 200 {
			rest = rest[:200]
		}
		sc := bufio.NewScanner(strings.NewReader(rest))
		sc.Split(bufio.ScanWords)
		for i := 0; i < candidateWindow && sc.Scan(); i++ {
			word := strings.Trim(sc.Text(), `"'“”‘’«»()[]<>*`)
			word = strings.TrimLeft(word, ":=")
			if word == "" || filler[strings.ToLower(word)] {
				continue
			}
			trimmed := strings.TrimRightFunc(word, func(r rune) bool { return strings.ContainsRune(".,;:!?", r) })
			for _, c := range []string{trimmed, word} {
				if n := utf8.RuneCountInString(c); n >= minPasswordLen && n <= maxPasswordLen && !hasControl(c) && !contains(out, c) {
					out = append(out, c)
				}
			}
			break
		}
	}
	return out
}

func hasControl(s string) bool {
	return strings.IndexFunc(s, unicode.IsControl) >= 0
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// stripTags turns HTML into its text well enough to find a password in it.
func stripTags(html string) string {
	var b strings.Builder
	in := false
	for _, r := range html {
		switch {
		case r == '<':
			in = true
			b.WriteByte(' ')
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.NewReplacer("&nbsp;", " ", "&amp;", "&", "&quot;", `"`, "&lt;", "<", "&gt;", ">").Replace(b.String())
}
