package harness

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// DepsFile is the one list of what the tests and the demo need from the
// machine, relative to the module root. scripts/install-deps.sh installs
// from it, and Program accepts only programs it lists.
const DepsFile = "scripts/deps.txt"

// Dep is one line of DepsFile: a program (or a file, by absolute path), the
// Debian package that provides it ("-" when it is not Debian's) and why.
type Dep struct {
	Program, Package, Why string
	Line                  int
}

// ParseDeps reads the lines of DepsFile; # starts a comment line.
func ParseDeps(r io.Reader) ([]Dep, error) {
	var deps []Dep
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 3 {
			return nil, fmt.Errorf("%s line %d: want \"program package why\", got %q", DepsFile, n, line)
		}
		if first, dup := seen[f[0]]; dup {
			return nil, fmt.Errorf("%s line %d: %s is listed already on line %d", DepsFile, n, f[0], first)
		}
		seen[f[0]] = n
		deps = append(deps, Dep{Program: f[0], Package: f[1], Why: strings.Join(f[2:], " "), Line: n})
	}
	return deps, sc.Err()
}

// ModuleRoot walks up from the working directory to the directory that
// holds go.mod: go test runs in the package's directory, the demo in the
// root.
func ModuleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("module root: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("module root: no go.mod above the working directory")
		}
		dir = parent
	}
}

var loadDeps = sync.OnceValues(func() (map[string]Dep, error) {
	root, err := ModuleRoot()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(root, DepsFile))
	if err != nil {
		return nil, fmt.Errorf("reading the list of programs: %w", err)
	}
	defer f.Close()
	list, err := ParseDeps(f)
	if err != nil {
		return nil, err
	}
	deps := make(map[string]Dep, len(list))
	for _, d := range list {
		deps[d.Program] = d
	}
	return deps, nil
})

// Lookup returns the path of an installed program that DepsFile lists. A
// program it does not list is an error even when installed: a fresh machine
// would lack it. So is a listed one that is missing, naming its package.
func Lookup(name string) (string, error) {
	deps, err := loadDeps()
	if err != nil {
		return "", err
	}
	return lookup(deps, name)
}

func lookup(deps map[string]Dep, name string) (string, error) {
	d, ok := deps[name]
	if !ok {
		return "", fmt.Errorf("program %s is not in %s: add it there with its Debian package, so that scripts/install-deps.sh installs it", name, DepsFile)
	}
	if p, ok := findProgram(name); ok {
		return p, nil
	}
	if names, ok := strings.CutPrefix(d.Package, "unpack:"); ok {
		return "", fmt.Errorf("%s not unpacked: scripts/install-deps.sh downloads Debian's %s and unpacks them (not installed); run it as root", name, strings.ReplaceAll(names, ",", ", "))
	}
	if d.Package == "-" {
		return "", fmt.Errorf("%s not found (not a Debian package: %s)", name, d.Why)
	}
	return "", fmt.Errorf("%s not installed: it comes with Debian's %s package; run scripts/install-deps.sh as root", name, d.Package)
}

// Program is Lookup for a test: it fails the test (never skips it) when the
// program is not listed or not installed.
func Program(t testing.TB, name string) string {
	t.Helper()
	p, err := Lookup(name)
	if err != nil {
		t.Fatalf("harness: %v", err)
	}
	return p
}

// findProgram looks in PATH and then in the sbin and bin directories a
// non-login PATH may lack; an absolute name must simply exist.
func findProgram(name string) (string, bool) {
	if filepath.IsAbs(name) {
		_, err := os.Stat(name)
		return name, err == nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, true
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}
