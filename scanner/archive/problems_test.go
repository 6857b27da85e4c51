package archive

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/scanner/archive/archivetest"
)

func hasProblem(problems []Problem, member string, kind ProblemKind, detail string) bool {
	for _, p := range problems {
		if p.Member == member && p.Kind == kind && strings.Contains(p.Detail, detail) {
			return true
		}
	}
	return false
}

func TestEncrypted(t *testing.T) {
	files := []file{{"doc.exe", eicar()}}
	tests := []struct {
		name   string
		build  func(t *testing.T) []byte
		member string // "" when names are unreadable
		detail string
	}{
		{"zip ZipCrypto", func(t *testing.T) []byte { return tool(t, "x.zip", files, "zip", "-q", "-P", "pw", "x.zip", "doc.exe") }, "doc.exe", "(ZipCrypto)"},
		{"zip AES-256", func(t *testing.T) []byte {
			return tool(t, "x.zip", files, "7z", "a", "-tzip", "-pPW", "-mem=AES256", "x.zip", "doc.exe")
		}, "doc.exe", "(AES-256)"},
		{"7z", func(t *testing.T) []byte { return tool(t, "x.7z", files, "7z", "a", "-pPW", "x.7z", "doc.exe") }, "doc.exe", "7zAES"},
		{"7z encrypted headers", func(t *testing.T) []byte {
			return tool(t, "x.7z", files, "7z", "a", "-pPW", "-mhe=on", "x.7z", "doc.exe")
		}, "", "headers are encrypted"},
		{"rar", func(*testing.T) []byte { return archivetest.RAR4("doc.exe", eicar(), 0x04) }, "doc.exe", "rar: member doc.exe is encrypted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, err := walk(t, tt.build(t), Limits{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !hasProblem(problems, tt.member, Encrypted, tt.detail) {
				t.Errorf("problems %+v, want Encrypted for %q with %q", problems, tt.member, tt.detail)
			}
			if tt.member == "" {
				if len(got) != 0 {
					t.Errorf("visited %+v in an archive with unreadable names", got)
				}
				return
			}
			if len(got) != 1 || got[0].m.Name != tt.member || !got[0].m.Encrypted || got[0].content != nil {
				t.Errorf("visited %+v, want %s encrypted with nil content", got, tt.member)
			}
		})
	}
}

func TestUnscannable(t *testing.T) {
	zipData := makeZip(t, file{"a.txt", bytes.Repeat([]byte("abc"), 1000)}, file{"eicar.com", eicar()})
	sevenData := tool(t, "x.7z", []file{{"a.txt", bytes.Repeat([]byte("abc"), 1000)}}, "7z", "a", "x.7z", "a.txt")
	tarData := makeTar(t, file{"a.txt", bytes.Repeat([]byte("abc"), 1000)})
	tests := []struct {
		name   string
		f      Format
		data   []byte
		member string
		detail string
	}{
		{"truncated zip", Zip, zipData[:len(zipData)-30], "", "zip: corrupt archive"},
		{"zip with bad data", Zip, corrupt(zipData, 40, 50), "a.txt", "zip: corrupt archive"},
		{"truncated 7z", SevenZip, sevenData[:len(sevenData)-20], "", "7z:"},
		{"truncated tar header", Tar, tarData[:900], "", "truncated archive"},
		{"truncated tar data", Tar, tarData[:1600], "a.txt", "truncated archive"},
		{"truncated gzip", Gzip, makeGzip(t, "", bytes.Repeat([]byte("abcdefgh"), 10000))[:100], "data", "truncated archive"},
		{"not a rar", Rar, []byte("Rar!\x1a\x07\x00garbage"), "", "rar:"},
		{"escaping name", Zip, makeZip(t, file{"../evil.exe", eicar()}), "../evil.exe", "member name ../evil.exe escapes the archive"},
		{"absolute name", Zip, makeZip(t, file{"/etc/cron.d/x", nil}), "/etc/cron.d/x", "escapes the archive"},
		{"backslash name", Tar, makeTar(t, file{`a\..\..\evil.exe`, nil}), `a\..\..\evil.exe`, "escapes the archive"},
		{"drive name", Zip, makeZip(t, file{`C:\evil.exe`, nil}), `C:\evil.exe`, "escapes the archive"},
		{"overlapping entries", Zip, overlappingZip(t), "second.exe", "overlaps member first.exe"},
		{"unsupported method", Zip, zipMethod(t, 14), "lzma.bin", "unsupported compression method 14"},
		{"control chars", Zip, makeZip(t, file{"a\x1b[2Jb/../../x", nil}), "a?[2Jb/../../x", "escapes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, problems, err := walkAs(tt.f, tt.data, Limits{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if !hasProblem(problems, tt.member, Unscannable, tt.detail) {
				t.Errorf("problems %+v, want Unscannable for %q with %q", problems, tt.member, tt.detail)
			}
		})
	}
}

// corrupt returns a copy of data with bytes from..to inverted.
func corrupt(data []byte, from, to int) []byte {
	out := append([]byte(nil), data...)
	for i := from; i < to; i++ {
		out[i] ^= 0xff
	}
	return out
}

// overlappingZip has two central directory entries pointing at the same
// local header, the trick of overlapping zip bombs.
func overlappingZip(t *testing.T) []byte {
	data := makeZip(t, file{"first.exe", eicar()}, file{"second.exe", eicar()})
	// The second central directory entry's local header offset (field at
	// 42 of a central directory header, APPNOTE 4.3.12) becomes 0.
	second := bytes.LastIndex(data, []byte("PK\x01\x02"))
	binary.LittleEndian.PutUint32(data[second+42:], 0)
	return data
}

// zipMethod is a zip whose one entry claims a method archive/zip lacks.
func zipMethod(t *testing.T, method uint16) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.CreateRaw(&zip.FileHeader{Name: "lzma.bin", Method: method, CompressedSize64: 4, UncompressedSize64: 4})
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abcd"))
	zw.Close()
	return buf.Bytes()
}

// bombZip is a zip of one member of n zero bytes, deflated (about 1000:1),
// made without holding n bytes.
func bombZip(t *testing.T, n int64) []byte {
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) {
		return flate.NewWriter(w, flate.BestSpeed)
	})
	w, err := zw.Create("zeros.bin")
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for left := n; left > 0; left -= int64(len(chunk)) {
		w.Write(chunk[:min(left, int64(len(chunk)))])
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestBomb(t *testing.T) {
	data := bombZip(t, 200<<20)
	t.Logf("bomb: %d bytes expand to 200 MiB", len(data))
	var read int64
	var readErr error
	problems, err := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)),
		Limits{MaxRatio: 100}, nil, func(m Member, r io.Reader) error {
			read, readErr = io.Copy(io.Discard, r)
			return readErr
		})
	if err != nil {
		t.Fatal(err)
	}
	var lim *ErrLimit
	if !errors.As(readErr, &lim) || lim.Limit != "max_ratio" || lim.Error() != "max_ratio 100 exceeded" {
		t.Fatalf("reader error %v, want max_ratio", readErr)
	}
	if read >= 10<<20 {
		t.Errorf("read %d bytes before the ratio stopped the bomb, want < 10 MB", read)
	}
	t.Logf("bomb stopped after %d expanded bytes", read)
	if !hasProblem(problems, "zeros.bin", LimitExceeded, "max_ratio 100") {
		t.Errorf("problems %+v, want max_ratio for zeros.bin", problems)
	}
}

func TestMemberSize(t *testing.T) {
	data := makeZip(t, file{"big", make([]byte, 5000)}, file{"small", []byte("ok")})
	got, problems, err := walk(t, data, Limits{MaxMemberSize: 4096}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var lim *ErrLimit
	if len(got) != 2 || len(got[0].content) != 4096 || !errors.As(got[0].err, &lim) || lim.Limit != "max_member_size" {
		t.Fatalf("got %+v, want big cut at 4096 with max_member_size", got)
	}
	if string(got[1].content) != "ok" || got[1].err != nil {
		t.Errorf("small: %q %v", got[1].content, got[1].err)
	}
	// visit swallowed the error: it is the caller's finding, not Walk's.
	if len(problems) != 0 {
		t.Errorf("problems %+v", problems)
	}
}

// TestBudget: one budget across two archives of a message.
func TestBudget(t *testing.T) {
	a := makeZip(t, file{"a1", make([]byte, 600<<10)}, file{"a2", []byte("x")})
	b := makeZip(t, file{"b1", make([]byte, 600<<10)}, file{"b2", []byte("y")})
	budget := NewBudget(1 << 20)
	lim := Limits{MaxRatio: 1e6}
	var visited []string
	visit := func(m Member, r io.Reader) error {
		visited = append(visited, m.Name)
		_, err := io.Copy(io.Discard, r)
		return err
	}
	pa, err := Walk(context.Background(), Zip, bytes.NewReader(a), int64(len(a)), lim, budget, visit)
	if err != nil || len(pa) != 0 {
		t.Fatalf("first archive: %v %v", pa, err)
	}
	pb, err := Walk(context.Background(), Zip, bytes.NewReader(b), int64(len(b)), lim, budget, visit)
	if err != nil {
		t.Fatal(err)
	}
	if !hasProblem(pb, "b1", LimitExceeded, "max_expanded_bytes 1048576 for the message exceeded") {
		t.Errorf("second archive: %+v, want max_expanded_bytes on b1", pb)
	}
	if strings.Join(visited, ",") != "a1,a2,b1" {
		t.Errorf("visited %v: the walk must stop when the budget is exhausted", visited)
	}
	if budget.Used() != 1<<20 || !budget.Exceeded() {
		t.Errorf("budget used %d, exceeded %v", budget.Used(), budget.Exceeded())
	}
	pc, _ := Walk(context.Background(), Zip, bytes.NewReader(a), int64(len(a)), lim, budget, visit)
	if !hasProblem(pc, "", LimitExceeded, "max_expanded_bytes") || len(visited) != 3 {
		t.Errorf("a walk after the budget: %+v, visited %v", pc, visited)
	}
}

// TestMaxMembers: members with content are budgeted across the
// message's archives; empty members and directories are free; the
// archive that runs the budget out stops at once (no further member
// decoded) and says which budget.
func TestMaxMembers(t *testing.T) {
	var files []file
	for _, n := range []string{"a", "b", "c", "d"} {
		files = append(files, file{n, []byte(n)})
	}
	empties := []file{{"e1", nil}, {"dir/", nil}, {"e2", nil}, {"x", []byte("x")}, {"e3", nil}}
	for _, tt := range []struct {
		name     string
		data     []byte
		max      int
		before   int // members with content already booked by earlier archives
		want     string
		exceeded bool
	}{
		{"zip: hit", makeZip(t, files...), 3, 0, "a,b,c", true},
		{"tar: hit", makeTar(t, files...)[512:], 3, 0, "a,b,c", true}, // without makeTar's directory entry
		{"7z: hit", tool(t, "x.7z", files, "7z", "a", "x.7z", "a", "b", "c", "d"), 3, 0, "a,b,c", true},
		{"zip: not hit", makeZip(t, files...), 4, 0, "a,b,c,d", false},
		{"zip: earlier archives count", makeZip(t, files...), 4, 2, "a,b", true},
		{"zip: empty members are free", makeZip(t, empties...), 1, 0, "x", false},
		{"tar: empty members are free", makeTar(t, slices.Delete(slices.Clone(empties), 1, 2)...), 1, 0, "x", false}, // makeTar writes dir/
	} {
		t.Run(tt.name, func(t *testing.T) {
			budget := NewBudget(0).LimitMembers(tt.max)
			for range tt.before {
				if err := budget.TakeMember(); err != nil {
					t.Fatal(err)
				}
			}
			got, problems, err := walk(t, tt.data, Limits{}, budget)
			if err != nil {
				t.Fatal(err)
			}
			var read []string
			for i, s := range got {
				if len(s.content) > 0 {
					read = append(read, s.m.Name)
				} else if s.err != nil && i != len(got)-1 {
					t.Errorf("member %s refused (%v) and the walk went on", s.m.Name, s.err)
				}
			}
			if strings.Join(read, ",") != tt.want {
				t.Errorf("members read %v, want %s; problems %+v", read, tt.want, problems)
			}
			limit := fmt.Sprintf("max_members %d for the message exceeded", tt.max)
			has := slices.ContainsFunc(problems, func(p Problem) bool { return p.Kind == LimitExceeded && p.Detail == limit })
			if has != tt.exceeded {
				t.Errorf("problems %+v, want %q: %v", problems, limit, tt.exceeded)
			}
			if budget.Exceeded() != tt.exceeded {
				t.Errorf("budget exceeded %v, want %v", budget.Exceeded(), tt.exceeded)
			}
		})
	}
}

// TestBudgetStop: a budget the caller spends (the engines' time) stops
// the archive being walked after its current member, with the reason,
// and later walks open nothing.
func TestBudgetStop(t *testing.T) {
	data := makeZip(t, file{"a", []byte("a")}, file{"b", []byte("b")}, file{"c", []byte("c")})
	budget := NewBudget(1 << 20)
	why := &ErrLimit{Limit: "max_engine_time", Value: int64(time.Minute), Shown: "1m0s", Message: true}
	var names []string
	problems, err := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)), Limits{}, budget,
		func(m Member, r io.Reader) error {
			names = append(names, m.Name)
			io.Copy(io.Discard, r)
			if m.Name == "b" {
				budget.Stop(why)
			}
			return nil
		})
	if err != nil || strings.Join(names, ",") != "a,b" {
		t.Fatalf("visited %v, err %v", names, err)
	}
	want := "max_engine_time 1m0s for the message exceeded"
	if len(problems) != 1 || !hasProblem(problems, "", LimitExceeded, want) {
		t.Errorf("problems %+v, want one %q", problems, want)
	}
	again, _ := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)), Limits{}, budget,
		func(m Member, r io.Reader) error {
			t.Errorf("member %s visited after the budget ran out", m.Name)
			return nil
		})
	if !hasProblem(again, "", LimitExceeded, want) {
		t.Errorf("a walk after the budget: %+v", again)
	}
	// Stop after the last member: nothing was left out, nothing to say.
	last := NewBudget(0)
	problems, _ = Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)), Limits{}, last,
		func(m Member, r io.Reader) error {
			if m.Name == "c" {
				last.Stop(why)
			}
			return nil
		})
	if len(problems) != 0 {
		t.Errorf("stopped after the last member: problems %+v", problems)
	}
}

// TestLimitFromVisit: a ratio or size limit returned by visit is recorded
// and the walk goes on.
func TestLimitFromVisit(t *testing.T) {
	data := makeZip(t, file{"big", make([]byte, 5000)}, file{"next", []byte("ok")})
	var names []string
	problems, err := Walk(context.Background(), Zip, bytes.NewReader(data), int64(len(data)),
		Limits{MaxMemberSize: 100}, nil, func(m Member, r io.Reader) error {
			names = append(names, m.Name)
			_, err := io.Copy(io.Discard, r)
			return err
		})
	if err != nil || strings.Join(names, ",") != "big,next" {
		t.Fatalf("visited %v, err %v", names, err)
	}
	if len(problems) != 1 || !hasProblem(problems, "big", LimitExceeded, "max_member_size 100 exceeded") {
		t.Errorf("problems %+v", problems)
	}
}

// TestBudgetRatio: the message's bytes are also bounded by max_ratio
// times its size, not below the floor; whichever is lower is the limit
// named.
func TestBudgetRatio(t *testing.T) {
	data := makeZip(t, file{"a", make([]byte, 20000)}, file{"b", []byte("b")})
	for _, tt := range []struct {
		name   string
		budget *Budget
		want   string // "" not hit
	}{
		{"ratio hit", NewBudget(1<<20).LimitRatio(10, 1000, 0), "max_ratio 10 for the message exceeded"},
		{"ratio below the floor", NewBudget(1<<20).LimitRatio(10, 1000, 64<<10), ""},
		{"large message", NewBudget(1<<20).LimitRatio(10, 10000, 0), ""},
		{"max_expanded_bytes lower", NewBudget(10000).LimitRatio(100, 1000, 0), "max_expanded_bytes 10000 for the message exceeded"},
		{"no ratio", NewBudget(1<<20).LimitRatio(0, 1000, 0), ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, problems, err := walk(t, data, Limits{}, tt.budget)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == "" {
				if len(problems) != 0 || len(got) != 2 {
					t.Errorf("visited %d, problems %+v; want both members, no problem", len(got), problems)
				}
				return
			}
			if !hasProblem(problems, "a", LimitExceeded, tt.want) || len(got) != 1 {
				t.Errorf("visited %d, problems %+v; want %q on a and the walk stopped", len(got), problems, tt.want)
			}
		})
	}
}
