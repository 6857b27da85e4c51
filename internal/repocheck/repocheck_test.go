package repocheck

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// root is the repository's top directory, seen from this package.
const root = "../.."

// outsideRef matches mentions of documents that live outside the
// repository. The names are built up so that this file does not match.
var outsideRef = regexp.MustCompile(`(?i)\b(` + "design|lab|style" + `)\.md\b|\.\./` + `shared\b`)

// trackedFiles lists the files git tracks (staged ones included), relative
// to the repository root. Without git there is no answer: the test fails.
func trackedFiles(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("git", "-C", root, "ls-files", "-z").Output()
	if err != nil {
		t.Fatalf("git ls-files: %v", err)
	}
	files := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(files) < 10 {
		t.Fatalf("git ls-files lists %d files", len(files))
	}
	return files
}

func readTracked(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestNoReferenceOutsideRepo: no tracked file mentions the design notes,
// lab notes or style guide that live outside the repository.
func TestNoReferenceOutsideRepo(t *testing.T) {
	for _, name := range trackedFiles(t) {
		data := readTracked(t, name)
		for i, line := range bytes.Split(data, []byte("\n")) {
			if m := outsideRef.Find(line); m != nil {
				t.Errorf("%s:%d mentions %s, which is not in the repository; say what it says here or point into docs/", name, i+1, m)
			}
		}
	}
}

func TestOutsideRefPattern(t *testing.T) {
	for _, tt := range []struct {
		text string
		want bool
	}{
		{"see " + "DESIGN" + ".md, section 3", true},
		{"(" + "LAB" + ".md)", true},
		{"../" + "shared/" + "STYLE" + ".md", true},
		{"read ../" + "shared", true},
		{"docs/architecture.md", false},
		{"collab" + ".md", false},
		{"README.md", false},
	} {
		t.Run(tt.text, func(t *testing.T) {
			if got := outsideRef.MatchString(tt.text); got != tt.want {
				t.Errorf("match %v, want %v", got, tt.want)
			}
		})
	}
}

// TestReadmeLinksDocs: README.md links the architecture and protocol
// documents, and they are in the repository.
func TestReadmeLinksDocs(t *testing.T) {
	files := trackedFiles(t)
	readme := string(readTracked(t, "README.md"))
	for _, doc := range []string{"docs/architecture.md", "docs/job-protocol.md"} {
		if !strings.Contains(readme, "]("+doc+")") && !strings.Contains(readme, "]("+doc+"#") {
			t.Errorf("README.md does not link %s", doc)
		}
		if !slices.Contains(files, doc) {
			t.Errorf("%s is not in the repository (git ls-files)", doc)
		}
	}
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// TestMarkdownLinks: every relative link of a tracked markdown file names
// a tracked file, and every #anchor a heading of the file it points into.
func TestMarkdownLinks(t *testing.T) {
	files := trackedFiles(t)
	for _, name := range files {
		if !strings.HasSuffix(name, ".md") {
			continue
		}
		for _, m := range mdLink.FindAllStringSubmatch(string(readTracked(t, name)), -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			file, anchor, _ := strings.Cut(target, "#")
			if file == "" {
				file = name
			} else {
				file = path.Join(path.Dir(name), file)
			}
			if !slices.Contains(files, file) {
				t.Errorf("%s links %s, which is not a file of the repository", name, target)
				continue
			}
			if anchor != "" && strings.HasSuffix(file, ".md") && !slices.Contains(anchors(string(readTracked(t, file))), anchor) {
				t.Errorf("%s links %s: %s has no heading with that anchor", name, target, file)
			}
		}
	}
}

// anchors are the anchors GitHub gives a markdown file's headings: lower
// case, punctuation dropped, spaces as hyphens.
func anchors(md string) []string {
	var out []string
	inFence := false
	for line := range strings.SplitSeq(md, "\n") {
		if strings.HasPrefix(line, "```") {
			inFence = !inFence
		}
		if inFence || !strings.HasPrefix(line, "#") {
			continue
		}
		title := strings.TrimSpace(strings.TrimLeft(line, "#"))
		var b strings.Builder
		for _, r := range strings.ToLower(title) {
			switch {
			case unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_':
				b.WriteRune(r)
			case r == ' ':
				b.WriteByte('-')
			}
		}
		out = append(out, b.String())
	}
	return out
}

func TestAnchors(t *testing.T) {
	got := anchors("# The job protocol (v1)\n```\n# not a heading\n```\n### 1. A scan request\n## Keys and rotation\n")
	want := []string{"the-job-protocol-v1", "1-a-scan-request", "keys-and-rotation"}
	if !slices.Equal(got, want) {
		t.Errorf("anchors %q, want %q", got, want)
	}
}
