package archive

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"

	"github.com/avstation/avstation/scanner/archive/archivetest"
	"github.com/avstation/avstation/test/harness"
)

// eicar is the EICAR test string, built from two halves so that this file
// is not itself a test virus.
func eicar() []byte {
	return []byte(`X5O!P%@AP[4\PZX54(P^)7CC)7}$` + `EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*`)
}

type file struct {
	name string
	data []byte
}

// seen is one call of visit.
type seen struct {
	m       Member
	content []byte
	err     error // the content reader's error
}

// walk detects data's format and walks it, reading each member in full.
func walk(t *testing.T, data []byte, lim Limits, budget *Budget) ([]seen, []Problem, error) {
	t.Helper()
	f, ok := Detect(data[:min(len(data), HeadSize)], "")
	if !ok {
		t.Fatalf("Detect: not an archive: % x", data[:min(len(data), 16)])
	}
	return walkAs(f, data, lim, budget)
}

func walkAs(f Format, data []byte, lim Limits, budget *Budget) ([]seen, []Problem, error) {
	var got []seen
	problems, err := Walk(context.Background(), f, bytes.NewReader(data), int64(len(data)), lim, budget,
		func(m Member, r io.Reader) error {
			s := seen{m: m}
			if r != nil {
				s.content, s.err = io.ReadAll(r)
			}
			got = append(got, s)
			return nil
		})
	return got, problems, err
}

func makeZip(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, f := range files {
		w, err := zw.Create(f.name)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f.data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeTar(t *testing.T, files ...file) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755})
	for _, f := range files {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Size: int64(len(f.data)), Mode: 0o644, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func makeGzip(t *testing.T, name string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Name = name
	zw.Write(data)
	zw.Close()
	return buf.Bytes()
}

func makeXz(t *testing.T, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tool runs an archiver in a temporary directory holding files and returns
// the bytes of the archive out it made there.
func tool(t *testing.T, out string, files []file, name string, args ...string) []byte {
	t.Helper()
	path := harness.Program(t, name)
	dir := t.TempDir()
	for _, f := range files {
		p := filepath.Join(dir, f.name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, f.data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(path, args...)
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, b)
	}
	b, err := os.ReadFile(filepath.Join(dir, out))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDetect(t *testing.T) {
	tarData := makeTar(t, file{"a", []byte("x")})
	v7 := append([]byte(nil), tarData[512:1024]...) // the regular file's header
	copy(v7[257:], make([]byte, 8))                 // drop the ustar magic and version
	copy(v7[148:156], "        ")
	var sum int
	for _, c := range v7 {
		sum += int(c)
	}
	copy(v7[148:], []byte(strings.Repeat("0", 6-len(octal(sum)))+octal(sum)+"\x00 "))
	tests := []struct {
		name string
		head []byte
		file string
		want Format
		ok   bool
	}{
		{"zip", makeZip(t, file{"a", nil}), "", Zip, true},
		{"empty zip", makeZip(t), "", Zip, true},
		{"tar", tarData, "", Tar, true},
		{"v7 tar by name", v7, "old.TAR", Tar, true},
		{"v7 tar without the name", v7, "old.bin", "", false},
		{"gzip", makeGzip(t, "", []byte("x")), "", Gzip, true},
		{"bzip2", []byte("BZh91AY&SY\x00\x00"), "", Bzip2, true},
		{"xz", makeXz(t, []byte("x")), "", Xz, true},
		{"7z", []byte("7z\xbc\xaf\x27\x1c\x00\x04"), "", SevenZip, true},
		{"rar4", archivetest.RAR4("a", []byte("x"), 0), "", Rar, true},
		{"rar5", []byte("Rar!\x1a\x07\x01\x00"), "", Rar, true},
		{"text", []byte("hello world"), "x.zip", "", false},
		{"short", []byte("P"), "", "", false},
		{"empty", nil, "", "", false},
		{"BZh alone", []byte("BZh9 is not bzip2"), "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Detect(tt.head[:min(len(tt.head), HeadSize)], tt.file)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Detect = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func octal(n int) string {
	s := ""
	for ; n > 0; n /= 8 {
		s = string(rune('0'+n%8)) + s
	}
	return s
}

func TestWalkFormats(t *testing.T) {
	clean := []byte("Minutes of the list meeting.\n")
	virus := eicar()
	two := []file{{"notes.txt", clean}, {"dir/eicar.com", virus}}
	tests := []struct {
		name  string
		build func(t *testing.T) []byte
		want  []file
	}{
		{"zip", func(t *testing.T) []byte { return makeZip(t, two...) }, two},
		{"zip by zip(1)", func(t *testing.T) []byte {
			return tool(t, "x.zip", two, "zip", "-q", "-r", "x.zip", "notes.txt", "dir")
		}, two},
		{"tar", func(t *testing.T) []byte { return makeTar(t, two...) }, two},
		{"gzip", func(t *testing.T) []byte { return makeGzip(t, "eicar.com", virus) }, []file{{"eicar.com", virus}}},
		{"gzip without a name", func(t *testing.T) []byte { return makeGzip(t, "", clean) }, []file{{"data", clean}}},
		{"gzip concatenated", func(t *testing.T) []byte {
			return append(makeGzip(t, "", virus[:20]), makeGzip(t, "", virus[20:])...)
		}, []file{{"data", virus}}},
		{"bzip2", func(t *testing.T) []byte {
			return tool(t, "e.bz2", []file{{"e", virus}}, "7z", "a", "-tbzip2", "e.bz2", "e")
		}, []file{{"data", virus}}},
		{"xz", func(t *testing.T) []byte { return makeXz(t, virus) }, []file{{"data", virus}}},
		{"xz by xz(1)", func(t *testing.T) []byte { return tool(t, "e.xz", []file{{"e", virus}}, "xz", "-k", "e") }, []file{{"data", virus}}},
		{"7z", func(t *testing.T) []byte { return tool(t, "x.7z", two, "7z", "a", "x.7z", "notes.txt", "dir") }, two},
		{"7z ppmd", func(t *testing.T) []byte {
			return tool(t, "x.7z", two, "7z", "a", "-m0=PPMd", "x.7z", "notes.txt", "dir")
		}, two},
		{"7z bzip2 non-solid", func(t *testing.T) []byte {
			return tool(t, "x.7z", two, "7z", "a", "-m0=BZip2", "-ms=off", "x.7z", "notes.txt", "dir")
		}, two},
		{"rar clean", func(*testing.T) []byte { return archivetest.RAR4("notes.txt", clean, 0) }, []file{{"notes.txt", clean}}},
		{"rar eicar", func(*testing.T) []byte { return archivetest.RAR4("eicar.com", virus, 0) }, []file{{"eicar.com", virus}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, err := walk(t, tt.build(t), Limits{MaxRatio: 100, MaxMemberSize: 1 << 20}, NewBudget(1<<20).LimitMembers(100))
			if err != nil || len(problems) != 0 {
				t.Fatalf("Walk: problems %v, err %v", problems, err)
			}
			// 7z lists members in its own order: compare as sets.
			want := map[string][]byte{}
			for _, f := range tt.want {
				want[f.name] = f.data
			}
			if len(got) != len(want) {
				t.Fatalf("visited %d members, want %d: %+v", len(got), len(want), got)
			}
			for _, s := range got {
				if s.err != nil || !bytes.Equal(s.content, want[s.m.Name]) {
					t.Errorf("member %q: content %q (err %v), want %q", s.m.Name, s.content, s.err, want[s.m.Name])
				}
				if s.m.Encrypted {
					t.Errorf("member %q marked encrypted", s.m.Name)
				}
			}
		})
	}
}

// TestNested: Walk does not recurse; the inner archive is a member whose
// content the caller recognises.
func TestNested(t *testing.T) {
	inner := makeZip(t, file{"eicar.com", eicar()})
	outer := makeZip(t, file{"inner.zip", inner})
	got, problems, err := walk(t, outer, Limits{}, nil)
	if err != nil || len(problems) != 0 || len(got) != 1 {
		t.Fatalf("got %+v, problems %v, err %v", got, problems, err)
	}
	if got[0].m.Name != "inner.zip" || !bytes.Equal(got[0].content, inner) {
		t.Fatalf("member %q is not the inner zip", got[0].m.Name)
	}
	if f, ok := Detect(got[0].content, got[0].m.Name); f != Zip || !ok {
		t.Errorf("Detect(inner) = %q, %v", f, ok)
	}

	tgz := makeGzip(t, "x.tar", makeTar(t, file{"eicar.com", eicar()}))
	got, problems, err = walk(t, tgz, Limits{}, nil)
	if err != nil || len(problems) != 0 || len(got) != 1 || got[0].m.Name != "x.tar" {
		t.Fatalf("tar.gz: got %+v, problems %v, err %v", got, problems, err)
	}
	if f, ok := Detect(got[0].content, got[0].m.Name); f != Tar || !ok {
		t.Errorf("Detect(tar.gz member) = %q, %v", f, ok)
	}
	if n := StreamName("x.tar.gz"); n != "x.tar" {
		t.Errorf("StreamName(x.tar.gz) = %q", n)
	}
	if n := StreamName("X.TGZ"); n != "X.tar" {
		t.Errorf("StreamName(X.TGZ) = %q", n)
	}
	if n := StreamName(".gz"); n != "data" {
		t.Errorf("StreamName(.gz) = %q", n)
	}
}

func TestCtxCancelled(t *testing.T) {
	data := makeZip(t, file{"a", []byte("1")}, file{"b", []byte("2")})
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	_, err := Walk(ctx, Zip, bytes.NewReader(data), int64(len(data)), Limits{}, nil, func(Member, io.Reader) error {
		calls++
		cancel()
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Errorf("err %v after %d calls, want context.Canceled after 1", err, calls)
	}
}

// TestVisitError: visit's own errors come back as is and stop the walk.
func TestVisitError(t *testing.T) {
	data := makeZip(t, file{"a", []byte("1")}, file{"b", []byte("2")})
	boom := errors.New("spool full")
	calls := 0
	_, err := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)), Limits{}, nil, func(Member, io.Reader) error {
		calls++
		return boom
	})
	if err != boom || calls != 1 {
		t.Errorf("err %v after %d calls, want %v after 1", err, calls, boom)
	}
}
