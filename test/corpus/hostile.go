package corpus

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// Hostile is one message of the bad-input set: bytes made to break a
// parser, with the verdict the station must give, what avmilter answers
// under the default policy, and why.
type Hostile struct {
	Name string         `json:"name"`
	Want verdict.Status `json:"want"`
	// Reply is avmilter's answer with the default policy: "accept" (clean,
	// or tagged and let through) or the SMTP code of the refusal.
	Reply string `json:"reply"`
	Note  string `json:"note"`
	Data  []byte `json:"-"`
}

// Default-policy answers, by verdict status (policy.Defaults): infected and
// limit-exceeded are refused, encrypted and unscannable tagged and accepted.
var defaultReply = map[verdict.Status]string{
	verdict.Clean: "accept", verdict.Infected: "550", verdict.LimitExceeded: "550",
	verdict.Encrypted: "accept", verdict.Unscannable: "accept", verdict.Error: "451",
}

// HostileCases builds the bad-input set in memory: every case is made
// here, nothing binary is stored.
func HostileCases() ([]Hostile, error) {
	eicar := harness.EICAR()
	clean := []byte("Minutes of the meeting: nothing to report.\n")
	var out []Hostile
	var errs []error
	add := func(name string, want verdict.Status, note string, data []byte, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		out = append(out, Hostile{Name: name, Want: want, Reply: defaultReply[want], Note: note, Data: data})
	}
	built := func(name string, want verdict.Status, note string) func([]byte, error) {
		return func(data []byte, err error) { add(name, want, note, data, err) }
	}
	arch := func(file, ctype string, data []byte, err error) ([]byte, error) {
		if err != nil {
			return nil, err
		}
		return message(file, true, textPart, attach(file, ctype, data)), nil
	}
	head := "From: alice@example.com\r\nTo: dev@lists.example.org\r\nMIME-Version: 1.0\r\n"

	add("header-line-1mb.eml", verdict.LimitExceeded, "a 1 MB Subject line: over max_header_bytes, refused without holding it whole",
		[]byte(head+"Subject: "+strings.Repeat("A", 1<<20)+"\r\n\r\nbody\r\n"), nil)
	var many strings.Builder
	many.WriteString(head)
	for i := 0; i < 100000; i++ {
		fmt.Fprintf(&many, "X-H-%d: v\r\n", i)
	}
	add("headers-100000.eml", verdict.LimitExceeded, "100 000 header fields (1.3 MB): over max_header_bytes",
		[]byte(many.String()+"\r\nbody\r\n"), nil)
	add("nul-bytes.eml", verdict.Infected, "NUL bytes in a header, the text and around EICAR's part: the virus is still found (the milter protocol's strings end at NUL, so avmilter sees the Subject cut there)",
		message("nul\x00bytes", true, part{"Content-Type: text/plain", "a\x00b\x00\x00c"}, attach("eicar.com", "application/octet-stream", eicar)), nil)
	mixed := strings.NewReplacer("\r\n", "\n").Replace(string(message("bare lf", true, textPart, attach("eicar.com", "application/octet-stream", eicar))))
	mixed = strings.Replace(mixed, "\n", "\r", 3) // the first header lines end in bare CR
	add("bare-cr-lf-mix.eml", verdict.Infected, "bare LF line ends with a few bare CR among them: EICAR's part is still found",
		[]byte(mixed), nil)
	add("invalid-utf8-name.eml", verdict.Infected, "an attachment name of invalid UTF-8 bytes: found, named without breaking the verdict's JSON",
		message("bad name", true, textPart, attach("\xff\xfe\xc3(\x80.exe", "application/octet-stream", eicar)), nil)
	add("nested-1000.eml", verdict.LimitExceeded, "1000 levels of nested multiparts: max_depth stops the walk",
		nested(1000, clean), nil)
	inside := attach("notes.txt", "text/plain", clean)
	inside.header = "Content-Type: text/plain; name=\"notes.txt\""
	inside.body = "the boundary --=_corpusX starts here\r\n--=_corpus-not-quite\r\n--=_corpus--trailing\r\nand more"
	add("boundary-in-content.eml", verdict.Infected, "lines inside a part that begin with the boundary, one a close delimiter with text after it: parsers may disagree where the parts end, so the walk reports the part unscannable and the raw-message scan finds EICAR in the part after",
		message("boundary in content", true, textPart, inside, attach("eicar.com", "application/octet-stream", eicar)), nil)
	garbage := attach("eicar.com", "application/octet-stream", eicar)
	garbage.body = "!!@@##\r\n" + strings.ReplaceAll(garbage.body, "\r\n", "*%$\r\n") + "====garbage after the padding"
	add("base64-garbage.eml", verdict.Infected, "base64 with characters outside the alphabet around and after it: decoded leniently, EICAR found",
		message("base64 garbage", true, textPart, garbage), nil)
	add("part-headers-without-end.eml", verdict.Unscannable, "the last part's header never ends: malformed, raw scanned, nothing found",
		[]byte(head+"Subject: open headers\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\nContent-Type: text/plain\r\nX-Long: "+strings.Repeat("x", 1000)), nil)

	z, err := overlappingZip(eicar)
	built("zip-overlapping-entries.eml", verdict.Infected, "a zip whose two entries share one local header and data: each is read, EICAR found")(arch("overlap.zip", "application/zip", z, err))
	z, err = lyingZip(clean)
	built("zip-lying-central-directory.eml", verdict.Unscannable, "a zip whose central directory gives sizes and an offset that do not match its entry: unscannable, not clean")(arch("liar.zip", "application/zip", z, err))
	z, err = zipOf(map[string][]byte{"../../etc/cron.d/evil": eicar, "/etc/passwd": clean, "C:\\Windows\\System32\\x.dll": clean, "CON": clean, "NUL.txt": clean, "dev/../../../null": clean})
	built("zip-hostile-names.eml", verdict.Infected, "member names with ../, absolute paths and device names: nothing is written by name, EICAR found")(arch("names.zip", "application/zip", z, err))
	z, err = zipOf(map[string][]byte{"\xff\xfe\xc3(\x80.exe": eicar, "notes\xc0\xaf.txt": clean})
	built("zip-invalid-utf8-member-names.eml", verdict.Infected, "member names of invalid UTF-8 bytes (one an overlong '/'): the verdict still decodes, EICAR found")(arch("names.zip", "application/zip", z, err))
	z, err = linkTar(eicar)
	built("tar-links.eml", verdict.Infected, "a tar with a hard link and a symlink to /etc/passwd: links are not followed, the regular member's EICAR found")(arch("links.tar", "application/x-tar", z, err))
	z, err = linkTar(nil)
	built("tar-links-only.eml", verdict.Clean, "a tar of links only (to /etc/shadow, /dev/zero): nothing is read through them")(arch("links.tar", "application/x-tar", z, err))
	built("7z-header-bomb.eml", verdict.Unscannable, "a 7z header declaring 4 294 967 295 files in a few bytes: refused before anything is allocated")(arch("bomb.7z", "application/x-7z-compressed", sevenZipHeaderBomb(), nil))
	built("rar-huge-dictionary.eml", verdict.Unscannable, "a RAR 5 member asking for a 4 GiB dictionary: refused (limit 64 MiB), not allocated")(arch("dict.rar", "application/vnd.rar", rar5HugeDictionary(), nil))
	if len(errs) > 0 {
		return out, fmt.Errorf("hostile corpus: %v", errs)
	}
	return out, nil
}

// WriteHostile writes the bad-input set into dir, with hostile.json listing
// each case's expected outcome.
func WriteHostile(dir string) ([]Hostile, error) {
	cases, err := HostileCases()
	if err != nil {
		return nil, err
	}
	for _, c := range cases {
		if err := os.WriteFile(filepath.Join(dir, c.Name), c.Data, 0o644); err != nil {
			return nil, err
		}
	}
	index, _ := json.MarshalIndent(cases, "", "  ")
	return cases, os.WriteFile(filepath.Join(dir, "hostile.json"), append(index, '\n'), 0o644)
}
