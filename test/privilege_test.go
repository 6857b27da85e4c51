package test

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// maxExposure is the highest systemd-analyze exposure a shipped unit may
// have; they score 1.4 ("OK").
const maxExposure = 2.0

var exposureLine = regexp.MustCompile(`Overall exposure level for (\S+): ([0-9]+(?:\.[0-9]+)?) `)

// TestUnitExposure prints each shipped systemd unit's exposure score
// (systemd-analyze security --offline) and fails when one is above
// maxExposure or has none.
//
//	go test ./test -run TestUnitExposure -v
func TestUnitExposure(t *testing.T) {
	sa := harness.Program(t, "systemd-analyze")
	for _, name := range []string{"avmilter.service", "avstation.service"} {
		t.Run(name, func(t *testing.T) {
			unit, err := filepath.Abs(filepath.Join(deployDir, "systemd", name))
			if err != nil {
				t.Fatal(err)
			}
			out, _ := run("", nil, sa, "security", "--offline=yes", "--no-pager", unit)
			m := exposureLine.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("no exposure level in:\n%s", out)
			}
			score, err := strconv.ParseFloat(m[2], 64)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: exposure %.1f (limit %.1f)", m[1], score, maxExposure)
			if score > maxExposure {
				t.Errorf("%s: exposure %.1f, above %.1f:\n%s", name, score, maxExposure, out)
			}
		})
	}
}

// setID is a chmod that sets the setuid or setgid bit.
var setID = regexp.MustCompile(`chmod\s+[ugoa]*\+s|chmod\s+[2-7][0-7]{3}\b|--chmod=[2-7][0-7]{3}\b`)

// TestDockerfileUnprivileged reads the Dockerfile: the image the daemons
// run from must switch to a user that is not root, by name or number,
// and never back; nothing may make a binary setuid or setgid.
func TestDockerfileUnprivileged(t *testing.T) {
	f, err := os.Open(filepath.Join("..", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var user string
	stages := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		switch strings.ToUpper(fields[0]) {
		case "FROM":
			stages++
			user = "" // each stage starts as its base image's user
			if len(fields) > 1 && strings.HasSuffix(fields[1], ":nonroot") {
				user = "nonroot"
			}
		case "USER":
			if len(fields) < 2 {
				t.Fatalf("USER without a user: %q", sc.Text())
			}
			user = fields[1]
		case "RUN", "COPY":
			if l := sc.Text(); setID.MatchString(l) {
				t.Errorf("setuid or setgid bit: %q", l)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if stages == 0 {
		t.Fatal("no FROM in the Dockerfile")
	}
	name, group, _ := strings.Cut(user, ":")
	if name == "" || name == "root" || name == "0" || group == "root" || group == "0" {
		t.Errorf("the final stage runs as %q: want USER with a user that is not root", user)
	}
	t.Logf("final stage runs as %s", user)
}
