package notify

import (
	"path"
	"strings"
)

// Bypassed reports whether addr matches one of the patterns, so that it must
// not be notified (IceWarp's per-recipient bypass file). A pattern is a glob
// on the whole address with path.Match semantics, compared in lower case:
// "*" matches any run of characters but "/", "?" one character, "[a-z]" a
// class; "*@example.org" is a domain, "noreply@*" a local part anywhere,
// "*" everyone. Angle brackets and spaces around addr are ignored; the null
// sender is the empty string. A malformed pattern matches nothing: check
// patterns with ValidPattern when the configuration is loaded.
func Bypassed(addr string, patterns []string) bool {
	a := strings.ToLower(strings.Trim(strings.TrimSpace(addr), "<>"))
	for _, p := range patterns {
		if ok, err := path.Match(strings.ToLower(strings.TrimSpace(p)), a); err == nil && ok {
			return true
		}
	}
	return false
}

// ValidPattern reports whether p is a well-formed bypass pattern.
func ValidPattern(p string) error {
	_, err := path.Match(strings.ToLower(strings.TrimSpace(p)), "")
	return err
}
