package harness

import (
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// TestDepsListEveryProgram scans the module's Go sources for the programs
// they start and fails on any that scripts/deps.txt does not list, since
// install-deps.sh would not install it on a fresh machine.
func TestDepsListEveryProgram(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	deps := readDeps(t, root)
	listed := map[string]bool{}
	for _, d := range deps {
		listed[d.Program] = true
	}
	uses, err := programsStarted(root)
	if err != nil {
		t.Fatal(err)
	}
	if len(uses) == 0 {
		t.Fatal("found no program started anywhere: the scan is broken")
	}
	found := map[string]bool{}
	for _, u := range uses {
		found[u.program] = true
		if !listed[u.program] {
			t.Errorf("%s starts %s, which %s does not list: add it with its Debian package", u.where, u.program, DepsFile)
		}
	}
	t.Logf("programs started: %s", strings.Join(sortedKeys(found), " "))
}

// TestProgramsStarted shows the scan finding each way a program is started,
// and not mistaking other strings for programs.
func TestProgramsStarted(t *testing.T) {
	tests := []struct {
		name, pkg, src string
		want           []string
	}{
		// ROOTDIR keeps this file's own strings from matching the repo scan.
		{"exec.Command", "x", `exec.Command("frobnicate", "-x")`, []string{"frobnicate"}},
		{"exec.CommandContext", "x", `exec.CommandContext(ctx, "frobnicate")`, []string{"frobnicate"}},
		{"exec.LookPath", "x", `exec.LookPath("frobnicate")`, []string{"frobnicate"}},
		{"harness.Program", "x", `harness.Program(t, "frobnicate")`, []string{"frobnicate"}},
		{"harness.Lookup", "x", `harness.Lookup("frobnicate")`, []string{"frobnicate"}},
		{"Program inside harness", "harness", `Program(t, "frobnicate")`, []string{"frobnicate"}},
		{"a helper that passes its parameter on", "x", `mk(t, "out", "frobnicate", "a")`, []string{"frobnicate"}},
		{"a helper of a helper", "x", `mk2("frobnicate")`, []string{"frobnicate"}},
		{"sh -c", "x", `exec.Command("sh", "-c", "frobnicate -q && other")`, []string{"frobnicate", "sh"}},
		{"sh -c built up", "x", `exec.Command("sh", "-c", "frobnicate -P "+pw)`, []string{"frobnicate", "sh"}},
		{"absolute path in a literal", "x", `cfg := Config{Path: "ROOTDIR/usr/sbin/frobnicate"}`, []string{"frobnicate"}},
		{"shebang", "x", `os.WriteFile(p, []byte("#!ROOTDIR/bin/frobnicate\n"), 0o755)`, []string{"frobnicate"}},
		{"a name the code computes", "x", `exec.Command(bin.Milter, "x")`, nil},
		{"a directory", "x", `dirs := []string{"/usr/bin", "/usr/local/sbin/"}`, nil},
		{"a path under /usr/local", "x", `s := "ExecStart=/usr/local/sbin/frobnicate"`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			src := fmt.Sprintf(`package %s

func mk(t any, out, name string, args ...string) { exec.Command(name, args...) }
func mk2(name string) { mk(nil, "o", name) }

func f() {
	%s
}
`, tc.pkg, tc.src)
			src = strings.ReplaceAll(src, "ROOTDIR", "")
			if err := os.WriteFile(filepath.Join(dir, "x.go"), []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			uses, err := programsStarted(dir)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, u := range uses {
				got = append(got, u.program)
			}
			sort.Strings(got)
			got = slices.Compact(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("found %q, want %q", got, tc.want)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	deps := map[string]Dep{
		"sh":                         {Program: "sh", Package: "dash"},
		"frobnicate-9z":              {Program: "frobnicate-9z", Package: "frob-tools"},
		"frobnicate-go":              {Program: "frobnicate-go", Package: "-", Why: "get it from frob.example"},
		"/nonexistent/ca":            {Program: "/nonexistent/ca", Package: "ca-stuff"},
		"/nonexistent/usr/sbin/frob": {Program: "/nonexistent/usr/sbin/frob", Package: "unpack:frob-bin,libfrob1"},
	}
	tests := []struct{ name, wantErr string }{
		{"sh", ""},
		{"frobnicate-9z", "frobnicate-9z not installed: it comes with Debian's frob-tools package; run scripts/install-deps.sh"},
		{"frobnicate-go", "frobnicate-go not found (not a Debian package: get it from frob.example)"},
		{"/nonexistent/ca", "/nonexistent/ca not installed: it comes with Debian's ca-stuff package"},
		{"/nonexistent/usr/sbin/frob", "/nonexistent/usr/sbin/frob not unpacked: scripts/install-deps.sh downloads Debian's frob-bin, libfrob1 and unpacks them"},
		{"unlisted-tool", "program unlisted-tool is not in scripts/deps.txt: add it there with its Debian package"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := lookup(deps, tc.name)
			switch {
			case tc.wantErr == "" && (err != nil || !filepath.IsAbs(p)):
				t.Errorf("lookup: %q, %v; want an absolute path", p, err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("lookup: %q, %v; want error %q", p, err, tc.wantErr)
			}
		})
	}
}

func TestParseDeps(t *testing.T) {
	tests := []struct{ name, text, wantErr string }{
		{"good", "# c\n\nzip zip fixtures\n7z p7zip-full more words\n", ""},
		{"no why", "zip zip\n", `line 1: want "program package why"`},
		{"twice", "zip zip a\nzip zip b\n", "line 2: zip is listed already on line 1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			deps, err := ParseDeps(strings.NewReader(tc.text))
			if tc.wantErr == "" {
				if err != nil || len(deps) != 2 || deps[1] != (Dep{"7z", "p7zip-full", "more words", 4}) {
					t.Errorf("ParseDeps: %+v, %v", deps, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("ParseDeps: %v; want %q", err, tc.wantErr)
			}
		})
	}
}

var update = flag.Bool("update", false, "rewrite README.md's list of packages from scripts/deps.txt")

// TestReadmeDeps keeps README's list of the packages make test installs
// equal to scripts/deps.txt. Regenerate: go test ./test/harness -run Readme -update
func TestReadmeDeps(t *testing.T) {
	root, err := ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(root, "README.md")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	begin, end := "<!-- deps -->", "<!-- end deps -->"
	i, j := strings.Index(text, begin), strings.Index(text, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %s ... %s list", begin, end)
	}
	want := readmePackages(readDeps(t, root))
	if got := text[i+len(begin) : j]; got == want {
		return
	}
	if !*update {
		t.Fatalf("README.md's package list differs from %s; run: go test ./test/harness -run Readme -update\nwant: %s", DepsFile, want)
	}
	text = text[:i+len(begin)] + want + text[j:]
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// readmePackages is each Debian package once, in deps.txt's order, with the
// programs it is there for unless that is one of the package's own name.
func readmePackages(deps []Dep) string {
	var order []string
	progs := map[string][]string{}
	for _, d := range deps {
		if d.Package == "-" {
			continue
		}
		if _, ok := progs[d.Package]; !ok {
			order = append(order, d.Package)
			progs[d.Package] = nil
		}
		if !filepath.IsAbs(d.Program) {
			progs[d.Package] = append(progs[d.Package], d.Program)
		}
	}
	var parts []string
	for _, p := range order {
		if names, ok := strings.CutPrefix(p, "unpack:"); ok {
			parts = append(parts, "`"+strings.ReplaceAll(names, ",", "`, `")+"` (downloaded and unpacked, not installed)")
			continue
		}
		s := "`" + p + "`"
		if len(progs[p]) > 1 || len(progs[p]) == 1 && progs[p][0] != p {
			s += " (" + strings.Join(progs[p], ", ") + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

func readDeps(t *testing.T, root string) []Dep {
	t.Helper()
	f, err := os.Open(filepath.Join(root, DepsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	deps, err := ParseDeps(f)
	if err != nil {
		t.Fatal(err)
	}
	return deps
}

// use is a program the Go code starts, and where.
type use struct{ program, where string }

// binPath is a program by absolute path in /bin, /sbin, /usr/bin or
// /usr/sbin (not /usr/local: our own daemons are installed there).
var binPath = regexp.MustCompile(`(?:^|[^A-Za-z0-9_./-])/(?:usr/)?s?bin/([A-Za-z0-9][A-Za-z0-9._+-]*)`)

// programsStarted parses every Go file under root and returns the programs
// started by a name the code spells out: the first argument of exec.Command
// (and CommandContext, LookPath) or harness.Program and Lookup, or of a
// function of the same package that passes its parameter on to one of those;
// the first word of an `sh -c` script; and any /usr/bin/NAME in a string.
func programsStarted(root string) ([]use, error) {
	fset := token.NewFileSet()
	pkgs := map[string][]*ast.File{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (strings.HasPrefix(n, ".") || n == "testdata" || n == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		key := filepath.Dir(path) + " " + f.Name.Name
		pkgs[key] = append(pkgs[key], f)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var uses []use
	for _, files := range pkgs {
		uses = append(uses, pkgPrograms(fset, root, files)...)
	}
	sort.Slice(uses, func(i, j int) bool { return uses[i].where < uses[j].where })
	return uses, nil
}

func pkgPrograms(fset *token.FileSet, root string, files []*ast.File) []use {
	inHarness := files[0].Name.Name == "harness"
	runners := findRunners(files, inHarness)
	var uses []use
	for _, f := range files {
		where := func(n ast.Node) string {
			p := fset.Position(n.Pos())
			rel, _ := filepath.Rel(root, p.Filename)
			return fmt.Sprintf("%s:%d", rel, p.Line)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				i := progArg(n, runners, inHarness)
				if i < 0 || i >= len(n.Args) {
					return true
				}
				name, ok := leadingString(n.Args[i])
				if !ok || name == "" {
					return true
				}
				if !strings.Contains(name, "/") {
					uses = append(uses, use{name, where(n)})
				}
				// sh -c SCRIPT: the script's first word is started too.
				if (name == "sh" || name == "bash") && len(n.Args) > i+2 {
					if c, _ := leadingString(n.Args[i+1]); c == "-c" {
						if script, ok := leadingString(n.Args[i+2]); ok {
							if w := strings.Fields(script); len(w) > 0 {
								uses = append(uses, use{w[0], where(n)})
							}
						}
					}
				}
			case *ast.BasicLit:
				if n.Kind != token.STRING {
					return true
				}
				s, err := strconv.Unquote(n.Value)
				if err != nil {
					return true
				}
				for _, m := range binPath.FindAllStringSubmatch(s, -1) {
					uses = append(uses, use{m[1], where(n)})
				}
			}
			return true
		})
	}
	return uses
}

// progArg is the index of the argument of call that names a program, or -1.
func progArg(call *ast.CallExpr, runners map[string]int, inHarness bool) int {
	switch fn := call.Fun.(type) {
	case *ast.SelectorExpr:
		pkg, ok := fn.X.(*ast.Ident)
		if !ok {
			return -1
		}
		switch pkg.Name + "." + fn.Sel.Name {
		case "exec.Command", "exec.LookPath", "harness.Lookup":
			return 0
		case "exec.CommandContext", "harness.Program":
			return 1
		}
	case *ast.Ident:
		if inHarness && fn.Name == "Program" {
			return 1
		}
		if inHarness && fn.Name == "Lookup" {
			return 0
		}
		if i, ok := runners[fn.Name]; ok {
			return i
		}
	}
	return -1
}

// findRunners finds the package's functions that pass a parameter on as the
// name of a program, directly or through another such function: name ->
// index of that parameter.
func findRunners(files []*ast.File, inHarness bool) map[string]int {
	runners := map[string]int{}
	for changed := true; changed; {
		changed = false
		for _, f := range files {
			for _, decl := range f.Decls {
				fd, ok := decl.(*ast.FuncDecl)
				if !ok || fd.Recv != nil || fd.Body == nil {
					continue
				}
				if _, known := runners[fd.Name.Name]; known {
					continue
				}
				params := map[string]int{}
				n := 0
				for _, field := range fd.Type.Params.List {
					for _, name := range field.Names {
						params[name.Name] = n
						n++
					}
					if len(field.Names) == 0 {
						n++
					}
				}
				ast.Inspect(fd.Body, func(node ast.Node) bool {
					call, ok := node.(*ast.CallExpr)
					if !ok {
						return true
					}
					if i := progArg(call, runners, inHarness); i >= 0 && i < len(call.Args) {
						if id, ok := call.Args[i].(*ast.Ident); ok {
							if p, ok := params[id.Name]; ok {
								runners[fd.Name.Name] = p
								changed = true
								return false
							}
						}
					}
					return true
				})
			}
		}
	}
	return runners
}

// leadingString is the value of a string literal, or of the literal that
// starts a sum of strings ("zip -P " + pw).
func leadingString(e ast.Expr) (string, bool) {
	for {
		switch x := e.(type) {
		case *ast.BinaryExpr:
			if x.Op != token.ADD {
				return "", false
			}
			e = x.X
		case *ast.BasicLit:
			if x.Kind != token.STRING {
				return "", false
			}
			s, err := strconv.Unquote(x.Value)
			return s, err == nil
		default:
			return "", false
		}
	}
}

func sortedKeys(m map[string]bool) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
