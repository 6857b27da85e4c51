// Package placeholder fills in IceWarp-style %%Name%% placeholders, as the
// notification templates and the reply texts use them. Names match without
// regard to case; values are inserted once and never expanded again, so a
// value that itself looks like a placeholder stays as it is.
package placeholder

import (
	"fmt"
	"slices"
	"strings"
)

// Expand replaces every known %%Name%% in s in a single pass; vals is keyed
// by lower-case name. An unknown placeholder is left as it is.
func Expand(s string, vals map[string]string) string {
	var b strings.Builder
	for {
		i := strings.Index(s, "%%")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i])
		rest := s[i+2:]
		j := strings.Index(rest, "%%")
		if j < 0 {
			b.WriteString(s[i:])
			return b.String()
		}
		if v, ok := vals[strings.ToLower(rest[:j])]; ok {
			b.WriteString(v)
			s = rest[j+2:]
			continue
		}
		// Unknown: keep "%%Name" and look again from the closing "%%",
		// which may open a placeholder of its own.
		b.WriteString(s[i : i+2+j])
		s = rest[j:]
	}
}

// Check reports the first placeholder in s that is not one of known (names
// as the documentation writes them: "VirusName"), the way Expand sees it.
func Check(s string, known []string) error {
	unknown := Unknown(s, func(name string) bool {
		return slices.ContainsFunc(known, func(k string) bool { return strings.EqualFold(k, name) })
	})
	if len(unknown) > 0 {
		return fmt.Errorf("%%%%%s%%%% is not a placeholder; use %s", unknown[0], list(known))
	}
	return nil
}

// Unknown lists the placeholders in s that known does not take, in order,
// the way Expand sees them.
func Unknown(s string, known func(name string) bool) []string {
	var out []string
	for {
		i := strings.Index(s, "%%")
		if i < 0 {
			return out
		}
		rest := s[i+2:]
		j := strings.Index(rest, "%%")
		if j < 0 {
			return out
		}
		name := rest[:j]
		if known(name) {
			s = rest[j+2:]
			continue
		}
		if isName(name) {
			out = append(out, name)
		}
		// As Expand: the closing "%%" may open a placeholder of its own.
		s = rest[j:]
	}
}

// isName: what an admin meant as a placeholder, as opposed to text between
// two unrelated "%%" (a literal "100%% sure %%" is not a typo of a name).
func isName(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func list(known []string) string {
	var b strings.Builder
	for i, k := range known {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("%%" + k + "%%")
	}
	return b.String()
}
