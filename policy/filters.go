package policy

import (
	"fmt"
	"path"
	"strings"

	"github.com/avstation/avstation/mimepart"
	"github.com/avstation/avstation/verdict"
)

// FilterConfig is IceWarp's extension filters: ordered rules on attachment
// names, the first that matches decides.
type FilterConfig struct {
	ApplyInArchives bool `yaml:"apply_in_archives" doc:"apply the rules to archive members too, not only to attachments"`
	// BlockDoubleExtensions is amavisd-new's rule against executables
	// shown as documents: it applies when no rule matched the name.
	BlockDoubleExtensions bool         `yaml:"block_double_extensions" doc:"block executables disguised by a double extension (invoice.pdf.exe, photo.jpg.scr) when no rule matched the name; false turns it off"`
	Rules                 []FilterRule `yaml:"rules" doc:"ordered rules; the first that matches an attachment decides"`
}

// FilterRule blocks, or explicitly lets through, attachments whose name
// matches Mask.
type FilterRule struct {
	Mask       string `yaml:"mask" doc:"file name mask, case-insensitive: *.exe; several separated by ; (*.exe;*.scr)"`
	ArchivedIn string `yaml:"archived_in" doc:"only members of an archive whose name matches this mask (*.zip); empty: anywhere"`
	Sender     Scope  `yaml:"sender" doc:"all, local or remote senders"`
	Recipient  Scope  `yaml:"recipient" doc:"all, local or remote recipients (a rule applies when any recipient is in scope)"`
	Action     string `yaml:"action" doc:"block, or allow (IceWarp's Not Block: let through what a later rule would block)"`
}

// Scope says whose mail a rule is for.
type Scope string

const (
	ScopeAll    Scope = "all"
	ScopeLocal  Scope = "local"
	ScopeRemote Scope = "remote"
)

type compiledRule struct {
	masks      []string
	archivedIn []string
	sender     Scope
	recipient  Scope
	block      bool
	index      int
}

// compile checks the rules and their masks once, at load.
func (f FilterConfig) compile() ([]compiledRule, map[string]string) {
	probs := map[string]string{}
	var out []compiledRule
	for i, r := range f.Rules {
		key := fmt.Sprintf("rules[%d]", i)
		c := compiledRule{sender: r.Sender, recipient: r.Recipient, index: i}
		var err error
		if c.masks, err = masks(r.Mask); err != nil || len(c.masks) == 0 {
			probs[key+".mask"] = fmt.Sprintf("%q is not a file name mask; write it like *.exe or *.exe;*.scr", r.Mask)
		} else if p := bareExtension(r.Mask, c.masks); p != "" {
			probs[key+".mask"] = p
		}
		if r.ArchivedIn != "" {
			if c.archivedIn, err = masks(r.ArchivedIn); err != nil {
				probs[key+".archived_in"] = fmt.Sprintf("%q is not a file name mask; write it like *.zip", r.ArchivedIn)
			} else if p := bareExtension(r.ArchivedIn, c.archivedIn); p != "" {
				probs[key+".archived_in"] = p
			}
		}
		for field, s := range map[string]*Scope{"sender": &c.sender, "recipient": &c.recipient} {
			if *s == "" {
				*s = ScopeAll
			}
			if *s != ScopeAll && *s != ScopeLocal && *s != ScopeRemote {
				probs[key+"."+field] = fmt.Sprintf("%q is not a scope; use all, local or remote", *s)
			}
		}
		switch strings.ToLower(r.Action) {
		case "block":
			c.block = true
		case "allow", "not block", "not-block":
		default:
			probs[key+".action"] = fmt.Sprintf("%q is not a filter action; use block or allow", r.Action)
		}
		out = append(out, c)
	}
	return out, probs
}

// masks splits "*.exe;*.scr" and checks each with path.Match.
func masks(s string) ([]string, error) {
	var out []string
	for _, m := range strings.FieldsFunc(s, func(r rune) bool { return r == ';' || r == ',' }) {
		m = strings.ToLower(strings.TrimSpace(m))
		if m == "" {
			continue
		}
		if _, err := path.Match(m, ""); err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// bareExtension finds a mask that is an extension written without "*.":
// "exe" or ".exe" matches only a file named exactly that, so a rule
// meant to block every .exe would block none. A whole name with a dot
// (winmail.dat) is a real mask and passes.
func bareExtension(setting string, masks []string) string {
	var bad, hint []string
	for _, m := range masks {
		if strings.ContainsAny(m, "*?[") {
			continue
		}
		if ext := strings.TrimPrefix(m, "."); !strings.Contains(ext, ".") && ext != "" {
			bad, hint = append(bad, m), append(hint, "*."+ext)
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("%q: %s matches only a file named exactly that, not every file with that extension; write %s",
		setting, strings.Join(bad, ", "), strings.Join(hint, ";"))
}

func matchAny(masks []string, name string) bool {
	for _, m := range masks {
		if ok, _ := path.Match(m, name); ok {
			return true
		}
	}
	return false
}

// NormalizeName is a file name as the filters see it: the last segment of
// either separator, lower case, without the trailing dots and spaces that
// Windows ignores ("invoice.exe. " opens as invoice.exe).
func NormalizeName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return strings.ToLower(strings.TrimRight(name, ". "))
}

// containers are the archive names a manifest path runs through:
// "2/invoice.zip/inner.7z/doc.exe" → invoice.zip, inner.7z.
func containers(p string) []string {
	_, inside := mimepart.Split(p)
	if len(inside) < 2 {
		return nil
	}
	out := make([]string, 0, len(inside)-1)
	for _, s := range inside[:len(inside)-1] {
		out = append(out, NormalizeName(s))
	}
	return out
}

// banned runs the filters over the manifest and returns the entries they
// block, each as a banned-name finding.
func (p *Policy) banned(manifest []verdict.Part, sc scopes) []verdict.Finding {
	var out []verdict.Finding
	for _, part := range manifest {
		inside := containers(part.Path)
		if len(inside) > 0 && !p.Filters.ApplyInArchives {
			continue
		}
		// Every name the part carries: a client may show any of them.
		for _, fn := range append([]string{part.FileName}, part.FileNames...) {
			name := NormalizeName(fn)
			if name == "" {
				continue
			}
			if detail, blocked := p.filterName(name, inside, sc); blocked {
				out = append(out, verdict.Finding{Path: part.Path, FileName: fn, ContentType: part.ContentType,
					Kind: KindBannedName, Detail: detail})
				break
			}
		}
	}
	return out
}

// filterName runs the rules over one name: the first rule that matches
// decides, block or allow; when none does, the double-extension rule.
func (p *Policy) filterName(name string, inside []string, sc scopes) (detail string, blocked bool) {
	for _, r := range p.filters {
		if !sc.match(r) || !matchAny(r.masks, name) {
			continue
		}
		if len(r.archivedIn) > 0 && !anyMatch(r.archivedIn, inside) {
			continue
		}
		if !r.block {
			return "", false
		}
		return fmt.Sprintf("extension filter %d blocks %s", r.index+1, strings.Join(r.masks, ";")), true
	}
	if p.Filters.BlockDoubleExtensions && doubleExtension(name) {
		return "an executable disguised by a double extension (block_double_extensions)", true
	}
	return "", false
}

// executable are the extensions Windows runs on a double click, as
// amavisd-new's double-extension rule lists them (and a few more it runs
// as readily: hta, wsf, msi, lnk).
var executable = map[string]bool{"exe": true, "vbs": true, "vbe": true, "pif": true, "scr": true, "bat": true,
	"cmd": true, "com": true, "cpl": true, "dll": true, "hta": true, "wsf": true, "wsh": true, "msi": true, "lnk": true}

// doubleExtension: an executable extension after another extension with a
// letter in it, "invoice.pdf.exe" or "photo.jpg   .scr", the way mail
// clients that hide known extensions show an executable as a document.
// "setup.exe" and "v1.2.exe" are not.
func doubleExtension(name string) bool {
	parts := strings.Split(name, ".")
	if len(parts) < 3 {
		return false
	}
	last := strings.TrimSpace(parts[len(parts)-1])
	prev := strings.TrimSpace(parts[len(parts)-2])
	return executable[last] && prev != "" && strings.ContainsFunc(prev, func(r rune) bool { return r >= 'a' && r <= 'z' })
}

func anyMatch(masks, names []string) bool {
	for _, n := range names {
		if matchAny(masks, n) {
			return true
		}
	}
	return false
}

// KindBannedName is the finding kind of a name the filters block. It lives
// here, not in verdict: the station does not filter names, the policy does.
const KindBannedName verdict.Kind = "banned-name"

// scopes says whether the sender is local and whether there are local and
// remote recipients.
type scopes struct{ senderLocal, anyLocalRcpt, anyRemoteRcpt bool }

func (s scopes) match(r compiledRule) bool {
	switch r.sender {
	case ScopeLocal:
		if !s.senderLocal {
			return false
		}
	case ScopeRemote:
		if s.senderLocal {
			return false
		}
	}
	switch r.recipient {
	case ScopeLocal:
		return s.anyLocalRcpt
	case ScopeRemote:
		return s.anyRemoteRcpt
	}
	return true
}

// scopesOf works out the scopes of an envelope: a sender is local when
// authenticated or of a local domain; a recipient when of a local domain.
func (c *Config) scopesOf(in Input) scopes {
	s := scopes{senderLocal: in.Authenticated || c.isLocal(in.Sender)}
	for _, r := range in.Recipients {
		if c.isLocal(r) {
			s.anyLocalRcpt = true
		} else {
			s.anyRemoteRcpt = true
		}
	}
	return s
}

func (c *Config) isLocal(addr string) bool {
	_, domain, ok := strings.Cut(addr, "@")
	if !ok {
		return false
	}
	domain = strings.ToLower(strings.Trim(domain, "<> "))
	for _, d := range c.LocalDomains {
		if strings.EqualFold(d, domain) {
			return true
		}
	}
	return false
}
