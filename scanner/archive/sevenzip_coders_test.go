package archive

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/avstation/avstation/test/harness"
)

// TestSevenZipUncommonCoder: members of a 7z made with a coder outside
// common7zCoders are marked, those of the common ones not, and both are
// read.
func TestSevenZipUncommonCoder(t *testing.T) {
	tests := []struct {
		args []string
		want bool
	}{
		{[]string{"-m0=LZMA2"}, false},
		{[]string{"-m0=BCJ", "-m1=LZMA"}, false},
		{[]string{"-m0=PPMd", "-mhc=off"}, false},
		{[]string{"-m0=Delta:4", "-m1=LZMA"}, true},
		{[]string{"-m0=BCJ2", "-m1=LZMA"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.args[0], func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "a.txt"), []byte("member content"), 0o600); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command(harness.Program(t, "7z"), append(append([]string{"a", "-bd"}, tt.args...), "o.7z", "a.txt")...)
			cmd.Dir = dir
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("7z: %v %s", err, out)
			}
			data, err := os.ReadFile(filepath.Join(dir, "o.7z"))
			if err != nil {
				t.Fatal(err)
			}
			var got []bool
			var content []string
			problems, err := Walk(context.Background(), SevenZip, bytes.NewReader(data), int64(len(data)), Limits{}, nil, func(m Member, r io.Reader) error {
				b, err := io.ReadAll(r)
				got, content = append(got, m.UncommonCoder), append(content, string(b))
				return err
			})
			if err != nil || len(problems) != 0 || len(got) != 1 || got[0] != tt.want || content[0] != "member content" {
				t.Errorf("UncommonCoder %v, content %q, problems %+v, err %v; want [%v]", got, content, problems, err, tt.want)
			}
		})
	}
}
