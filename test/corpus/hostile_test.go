package corpus

import (
	"testing"

	"github.com/avstation/avstation/verdict"
)

// TestHostileCoversTheIssue: the bad-input set keeps a case for each kind
// of input issue 11 lists, each with bytes, a known verdict, its
// default-policy reply and a note saying why.
func TestHostileCoversTheIssue(t *testing.T) {
	cases, err := HostileCases()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]Hostile{}
	for _, c := range cases {
		if _, dup := byName[c.Name]; dup {
			t.Errorf("%s twice", c.Name)
		}
		byName[c.Name] = c
	}
	for _, tt := range []struct{ kind, name string }{
		{"1 MB header lines", "header-line-1mb.eml"},
		{"100 000 headers", "headers-100000.eml"},
		{"NUL bytes", "nul-bytes.eml"},
		{"bare CR and LF mixes", "bare-cr-lf-mix.eml"},
		{"invalid UTF-8 names", "invalid-utf8-name.eml"},
		{"invalid UTF-8 names, in an archive", "zip-invalid-utf8-member-names.eml"},
		{"1000-level multipart nesting", "nested-1000.eml"},
		{"a boundary inside content", "boundary-in-content.eml"},
		{"base64 with garbage", "base64-garbage.eml"},
		{"part headers without end", "part-headers-without-end.eml"},
		{"zip with overlapping entries", "zip-overlapping-entries.eml"},
		{"a central directory that lies", "zip-lying-central-directory.eml"},
		{"names with ../, absolute paths and device names", "zip-hostile-names.eml"},
		{"tar with hard links and symlinks", "tar-links.eml"},
		{"a 7z header bomb", "7z-header-bomb.eml"},
		{"a RAR with a huge dictionary size", "rar-huge-dictionary.eml"},
	} {
		t.Run(tt.kind, func(t *testing.T) {
			c, ok := byName[tt.name]
			switch {
			case !ok:
				t.Fatalf("no case %s", tt.name)
			case len(c.Data) == 0 || c.Note == "":
				t.Errorf("%s: %d bytes, note %q", c.Name, len(c.Data), c.Note)
			case !verdict.Known(c.Want) || c.Reply == "":
				t.Errorf("%s: want %q, reply %q", c.Name, c.Want, c.Reply)
			}
		})
	}
}
