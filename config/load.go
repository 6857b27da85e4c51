// Package config reads the YAML configuration of avmilter and avstation.
// Decoding is strict (an unknown key is an error with its line number) and
// validation collects every problem at once, each naming its key and line, so
// that `check-config` can print them all.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Problems is every problem found in one config file, and its warnings.
type Problems struct {
	File     string
	List     []string
	Warnings []string // settings that work but are likely not what was meant
}

func (p *Problems) Error() string {
	s := fmt.Sprintf("%s: %d problem(s):\n  %s", p.File, len(p.List), strings.Join(p.List, "\n  "))
	if len(p.Warnings) > 0 {
		s += fmt.Sprintf("\n%s: %d warning(s):\n  %s", p.File, len(p.Warnings), strings.Join(p.Warnings, "\n  "))
	}
	return s
}

// checker collects problems, prefixing each with the key path and the line
// where the key stands in the file (mox's addErrorf, with lines).
type checker struct {
	file     string
	root     yaml.Node // the document, for settings that overlay others
	lines    map[string]int
	problems []string
	warnings []string
}

// node finds the mapping value at a top-level key, nil when absent.
func (c *checker) node(key string) *yaml.Node {
	if len(c.root.Content) == 0 || c.root.Content[0].Kind != yaml.MappingNode {
		return nil
	}
	m := c.root.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// addf records a problem with the key at path ("policy.on_infected").
func (c *checker) addf(path, format string, args ...any) {
	c.problems = append(c.problems, c.where(path)+": "+fmt.Sprintf(format, args...))
}

// warnf records a warning: the setting works, but likely not as meant.
// Warnings do not stop the daemon; check-config prints them.
func (c *checker) warnf(path, format string, args ...any) {
	c.warnings = append(c.warnings, c.where(path)+": "+fmt.Sprintf(format, args...))
}

// where is "line 3: key.path", or the path alone when it is not in the file.
func (c *checker) where(path string) string {
	if line, ok := c.lineOf(path); ok {
		return fmt.Sprintf("line %d: %s", line, path)
	}
	return path
}

// Off is the value that turns off a directory setting that is on by
// default (activity_dir, records_dir).
const Off = "off"

// stateDir resolves a directory setting that is on by default: empty is
// def, Off turns it off (the field is then empty, which is what the
// daemons test), anything else must be an absolute path.
func (c *checker) stateDir(key string, dir *string, def, what string) {
	switch {
	case *dir == "":
		*dir = def
	case *dir == Off:
		*dir = ""
	case !filepath.IsAbs(*dir):
		c.addf(key, "%q is not an absolute directory path; write one (default %s), or off to keep no %s", *dir, def, what)
	}
}

// lineOf finds the line of path, or of its nearest parent present in the file.
func (c *checker) lineOf(path string) (int, bool) {
	for p := path; p != ""; {
		if l, ok := c.lines[p]; ok {
			return l, true
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return 0, false
}

func (c *checker) err() error {
	if len(c.problems) == 0 {
		return nil
	}
	return &Problems{File: c.file, List: c.problems, Warnings: c.warnings}
}

// checkable is a daemon's config: it checks itself into a checker.
type checkable interface{ check(*checker) }

// loadChecked decodes the file at path into cfg, which holds the defaults,
// and checks it. The error, when not nil, is a *Problems listing
// everything wrong; without one, the warnings are returned, each
// "FILE: line N: key: text".
func loadChecked(path string, cfg checkable) (warnings []string, err error) {
	c, err := load(path, cfg)
	if err != nil {
		return nil, err
	}
	cfg.check(c)
	if err := c.err(); err != nil {
		return nil, err
	}
	for _, w := range c.warnings {
		warnings = append(warnings, path+": "+w)
	}
	return warnings, nil
}

// load decodes the YAML file at path into v strictly and maps each key path
// to its line for later messages. v must already hold the defaults.
func load(path string, v any) (*checker, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	c := &checker{file: path, lines: map[string]int{}}
	if err := yaml.Unmarshal(data, &c.root); err != nil {
		return nil, &Problems{File: path, List: []string{yamlMessage(err)}}
	}
	if len(c.root.Content) > 0 {
		indexLines(c.root.Content[0], "", c.lines)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, &Problems{File: path, List: decodeProblems(err)}
		}
		// Unknown keys and wrong types: yaml decoded everything else, so
		// validation goes on and every problem is listed at once.
		c.problems = decodeProblems(err)
	}
	return c, nil
}

func yamlMessage(err error) string {
	return strings.TrimPrefix(err.Error(), "yaml: ")
}

// renamed maps settings that were renamed to their new names, so that an
// old config gets a precise hint rather than "not a known setting".
var renamed = map[string]string{
	"records_keep": "records_max_age",
}

// decodeProblems splits yaml's "unmarshal errors" list into one problem per
// line, with a hint for the most common one.
func decodeProblems(err error) []string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []string{yamlMessage(err)}
	}
	var out []string
	for _, e := range te.Errors {
		if strings.Contains(e, "not found in type") {
			// "line 3: field foo not found in type config.Milter"
			head, field, _ := strings.Cut(e[:strings.Index(e, " not found in type")], "field ")
			if now, ok := renamed[field]; ok {
				e = head + "key " + strconv.Quote(field) + " was renamed to " + now + "; write " + now + " instead"
			} else {
				e = head + "key " + strconv.Quote(field) + " is not a known setting (check its spelling and indentation; the README lists every setting)"
			}
		}
		out = append(out, e)
	}
	return out
}

// indexLines records the line of every mapping key and sequence item.
func indexLines(n *yaml.Node, prefix string, lines map[string]int) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			p := k.Value
			if prefix != "" {
				p = prefix + "." + k.Value
			}
			lines[p] = k.Line
			indexLines(v, p, lines)
		}
	case yaml.SequenceNode:
		for i, item := range n.Content {
			p := prefix + "[" + strconv.Itoa(i) + "]"
			lines[p] = item.Line
			indexLines(item, p, lines)
		}
	}
}

// Logger builds the structured logger the config asks for, writing to w.
func (l Log) Logger(w io.Writer) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(l.Level)) // checked at load
	opts := &slog.HandlerOptions{Level: level}
	if l.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
