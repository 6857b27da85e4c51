package archive

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// num7z is 7z's variable-length UINT64.
func num7z(v uint64) []byte {
	for n := 0; n < 8; n++ {
		if v < 1<<(7*(n+1)) {
			b := []byte{byte(0xff<<(8-n)) | byte(v>>(8*n))}
			for i := 0; i < n; i++ {
				b = append(b, byte(v>>(8*i)))
			}
			return b
		}
	}
	b := []byte{0xff}
	return binary.LittleEndian.AppendUint64(b, v)
}

// cat joins header pieces: bytes, byte slices and numbers (as num7z).
func cat(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch v := p.(type) {
		case int:
			b = append(b, byte(v))
		case []byte:
			b = append(b, v...)
		case uint64:
			b = append(b, num7z(v)...)
		default:
			panic("cat")
		}
	}
	return b
}

// make7z is a 7z archive of the packed streams and the next header, with
// the CRCs right.
func make7z(packed, header []byte) []byte {
	b := append([]byte{}, magic7z...)
	b = append(b, 0, 4, 0, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, uint64(len(packed)))
	b = binary.LittleEndian.AppendUint64(b, uint64(len(header)))
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(header))
	binary.LittleEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[12:32]))
	b = append(b, packed...)
	return append(b, header...)
}

// encoded7z is a 7z archive whose header is inner, LZMA-packed, declaring
// unpacked as the header's unpacked size (len(inner) when 0).
func encoded7z(t *testing.T, inner []byte, unpacked uint64) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := lzma.WriterConfig{DictCap: 1 << 16, SizeInHeader: true, Size: int64(len(inner))}.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(inner)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	props, packed := buf.Bytes()[:5], buf.Bytes()[13:]
	if unpacked == 0 {
		unpacked = uint64(len(inner))
	}
	crc := binary.LittleEndian.AppendUint32(nil, crc32.ChecksumIEEE(inner))
	hdr := cat(k7zEncodedHeader,
		k7zPackInfo, uint64(0), uint64(1), k7zSize, uint64(len(packed)), k7zEnd,
		k7zUnpackInfo, k7zFolder, uint64(1), 0,
		uint64(1), 0x23, method7zLZMA, uint64(5), props,
		k7zCodersUnpackSize, unpacked, k7zCRC, 1, crc, k7zEnd,
		k7zEnd)
	return make7z(packed, hdr)
}

const huge = uint64(1<<32 - 1)

// walk7z walks data and fails when it allocated much.
func walk7z(t *testing.T, data []byte, maxMembers int) []Problem {
	t.Helper()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	before := m.TotalAlloc
	problems, err := Walk(context.Background(), SevenZip, bytes.NewReader(data), int64(len(data)), Limits{}, NewBudget(0).LimitMembers(maxMembers),
		func(_ Member, r io.Reader) error {
			if r != nil {
				io.Copy(io.Discard, r)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&m)
	if a := m.TotalAlloc - before; a > 32<<20 {
		t.Errorf("allocated %d MiB", a>>20)
	}
	return problems
}

// Test7zHeaderCounts: headers declaring more entries than they could
// hold are refused before sevenzip allocates for them.
func Test7zHeaderCounts(t *testing.T) {
	folder := cat(uint64(1), 0x00) // one coder, empty id (sevenzip allows it)
	tests := []struct {
		name   string
		data   []byte
		kind   ProblemKind
		detail string
	}{
		{"files", make7z(nil, cat(k7zHeader, k7zFilesInfo, huge, k7zEnd, k7zEnd)),
			Unscannable, "7z header declares 4294967295 files, more than the archive can hold"},
		{"files 2^62", make7z(nil, cat(k7zHeader, k7zFilesInfo, uint64(1<<62), k7zEnd, k7zEnd)),
			Unscannable, "declares 4611686018427387904 files"},
		{"files beyond the header", make7z(nil, cat(k7zHeader, k7zFilesInfo, uint64(5000), k7zDummy, uint64(10), make([]byte, 10), k7zEnd, k7zEnd)),
			Unscannable, "declares 5000 files"},
		{"files over the hard cap", make7z(nil, cat(k7zHeader, k7zFilesInfo, uint64(max7zCount+1), k7zDummy, uint64(max7zCount+8), make([]byte, max7zCount+8), k7zEnd, k7zEnd)),
			Unscannable, "declares 1048577 files"},
		{"folders", make7z(nil, cat(k7zHeader, k7zMainStreamsInfo, k7zUnpackInfo, k7zFolder, huge, 0, k7zEnd)),
			Unscannable, "declares 4294967295 folders"},
		{"pack streams", make7z(nil, cat(k7zHeader, k7zMainStreamsInfo, k7zPackInfo, uint64(0), huge, k7zSize, uint64(1), k7zEnd, k7zEnd, k7zEnd)),
			Unscannable, "declares 4294967295 pack streams"},
		{"substreams", make7z(nil, cat(k7zHeader, k7zMainStreamsInfo,
			k7zUnpackInfo, k7zFolder, uint64(1), 0, folder, k7zCodersUnpackSize, uint64(5), k7zEnd,
			k7zSubStreamsInfo, k7zNumUnpackStream, huge, k7zEnd, k7zEnd, k7zEnd)),
			Unscannable, "declares 4294967295 streams"},
		{"coders", make7z(nil, cat(k7zHeader, k7zMainStreamsInfo,
			k7zUnpackInfo, k7zFolder, uint64(1), 0, huge, k7zEnd)),
			Unscannable, "declares 4294967295 coders"},
		{"coder streams", make7z(nil, cat(k7zHeader, k7zMainStreamsInfo,
			k7zUnpackInfo, k7zFolder, uint64(1), 0, uint64(1), 0x10, huge, uint64(1), k7zEnd, k7zEnd, k7zEnd)),
			Unscannable, "more coder streams than the archive can hold"},
		{"coder properties", make7z(nil, cat(k7zHeader, k7zMainStreamsInfo,
			k7zUnpackInfo, k7zFolder, uint64(1), 0, uint64(1), 0x20, huge, k7zEnd, k7zEnd, k7zEnd)),
			Unscannable, "7z: corrupt archive: header: truncated"},
		{"plausible, over max_members", make7z(nil, cat(k7zHeader, k7zFilesInfo, uint64(100), k7zDummy, uint64(100), make([]byte, 100), k7zEnd, k7zEnd)),
			LimitExceeded, "max_members 2 (the 7z header declares 100 files)"},
		{"encoded, files", encoded7z(t, cat(k7zHeader, k7zFilesInfo, huge, k7zEnd, k7zEnd), 0),
			Unscannable, "7z header declares 4294967295 files"},
		{"encoded, folders", encoded7z(t, cat(k7zHeader, k7zMainStreamsInfo, k7zUnpackInfo, k7zFolder, huge, 0, k7zEnd), 0),
			Unscannable, "7z header declares 4294967295 folders"},
		{"encoded, too large", encoded7z(t, cat(k7zHeader, k7zFilesInfo, uint64(1), k7zEnd, k7zEnd), 100<<20),
			Unscannable, "7z header too large"},
		{"encoded, its own folders", make7z(nil, cat(k7zEncodedHeader, k7zUnpackInfo, k7zFolder, huge, 0, k7zEnd)),
			Unscannable, "7z header declares 4294967295 folders"},
		{"encoded, its own coder streams", make7z(nil, cat(k7zEncodedHeader,
			k7zUnpackInfo, k7zFolder, uint64(1), 0, uint64(1), 0x10, uint64(1), huge, k7zEnd, k7zEnd, k7zEnd)),
			Unscannable, "more coder streams than the archive can hold"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := walk7z(t, tt.data, 2)
			if len(problems) != 1 || !hasProblem(problems, "", tt.kind, tt.detail) {
				t.Errorf("problems %+v, want %s %q", problems, tt.kind, tt.detail)
			}
			if tt.kind == Unscannable {
				problems = walk7z(t, tt.data, 0) // no limit: the same
				if len(problems) != 1 || !hasProblem(problems, "", tt.kind, tt.detail) {
					t.Errorf("without limits: problems %+v", problems)
				}
			}
		})
	}
}

// Test7zHeaderBounds: the signature header's pointers and CRCs are checked.
func Test7zHeaderBounds(t *testing.T) {
	good := tool(t, "x.7z", []file{{"a.txt", []byte("hello hello hello")}}, "7z", "a", "-mhc=off", "x.7z", "a.txt")
	if err := check7zHeader(bytes.NewReader(good), int64(len(good)), "", 0); err != nil {
		t.Fatalf("a good archive: %v", err)
	}
	fixStart := func(b []byte) []byte {
		binary.LittleEndian.PutUint32(b[8:], crc32.ChecksumIEEE(b[12:32]))
		return b
	}
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	tests := []struct {
		name   string
		data   []byte
		detail string
	}{
		{"offset beyond", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[12:], 1<<40)
			return fixStart(b)
		}), "header at 1099511627776+"},
		{"offset overflow", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[12:], 1<<64-1)
			return fixStart(b)
		}), "is beyond the archive"},
		{"size beyond", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[20:], binary.LittleEndian.Uint64(b[20:])+1)
			return fixStart(b)
		}), "is beyond the archive"},
		{"size overflow", edit(func(b []byte) []byte {
			binary.LittleEndian.PutUint64(b[20:], 1<<64-8)
			return fixStart(b)
		}), "is beyond the archive"},
		{"start header CRC", edit(func(b []byte) []byte {
			b[8] ^= 1
			return b
		}), "start header CRC mismatch"},
		{"header CRC", edit(func(b []byte) []byte {
			b[len(b)-3] ^= 1
			return b
		}), "7z: corrupt archive: header: CRC mismatch"},
		{"trailing header byte", edit(func(b []byte) []byte {
			b = append(b, 0)
			binary.LittleEndian.PutUint64(b[20:], binary.LittleEndian.Uint64(b[20:])+1)
			hdr := b[32+binary.LittleEndian.Uint64(b[12:]):]
			binary.LittleEndian.PutUint32(b[28:], crc32.ChecksumIEEE(hdr))
			return fixStart(b)
		}), "data after the header"},
		{"short", good[:31], "no signature header"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			problems := walk7z(t, tt.data, 0)
			if len(problems) != 1 || !hasProblem(problems, "", Unscannable, tt.detail) {
				t.Errorf("problems %+v, want %q", problems, tt.detail)
			}
		})
	}
}

// Test7zHeaderGood: what 7z(1) writes passes the check, plain or encoded
// headers, and is walked as before.
func Test7zHeaderGood(t *testing.T) {
	files := []file{{"a.txt", []byte("hello hello hello")}, {"d/b.txt", bytes.Repeat([]byte("b"), 5000)}, {"d/empty", nil}}
	names := []string{"a.txt", "d"}
	for _, args := range [][]string{
		{},
		{"-mhc=off"},
		{"-ms=off"},
		{"-ms=off", "-mhc=off"},
		{"-m0=PPMd"},
		{"-m0=LZMA2", "-mhc=off"},
		{"-m0=Copy"},
		{"-mf=BCJ2"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			a := append(append([]string{"a"}, args...), "x.7z")
			data := tool(t, "x.7z", files, "7z", append(a, names...)...)
			if err := check7zHeader(bytes.NewReader(data), int64(len(data)), "", 3); err != nil {
				t.Fatalf("check: %v", err)
			}
			got, problems, err := walk(t, data, Limits{}, nil)
			if err != nil || len(problems) != 0 {
				t.Fatalf("problems %+v, err %v", problems, err)
			}
			contents := map[string]string{}
			for _, g := range got {
				contents[g.m.Name] = string(g.content)
			}
			if contents["a.txt"] != "hello hello hello" || len(contents["d/b.txt"]) != 5000 {
				t.Errorf("got %v", got)
			}
		})
	}
	// Encrypted headers: the check decrypts them with the candidate.
	data := tool(t, "x.7z", files, "7z", "a", "-pPW", "-mhe=on", "x.7z", "a.txt", "d")
	if err := check7zHeader(bytes.NewReader(data), int64(len(data)), "", 3); !errors.Is(err, errEncrypted7z) {
		t.Errorf("encrypted header without a password: %v", err)
	}
	s := newSession7z(context.Background(), []string{"nope", "PW"})
	defer s.close()
	if err := check7zHeader(bytes.NewReader(data), int64(len(data)), s.token(0), 3); err == nil || errors.As(err, new(*sevenZipHeaderError)) {
		t.Errorf("encrypted header, wrong password: %v", err)
	}
	if err := check7zHeader(bytes.NewReader(data), int64(len(data)), s.token(1), 3); err != nil {
		t.Errorf("encrypted header, right password: %v", err)
	}
	// Between MaxMembers and the slack, the walk reads MaxMembers.
	many := tool(t, "x.7z", []file{{"a", []byte("a")}, {"b", []byte("b")}, {"c", []byte("c")}}, "7z", "a", "x.7z", "a", "b", "c")
	got, problems, err := walk(t, many, Limits{}, NewBudget(0).LimitMembers(2))
	if err != nil || len(got) != 3 || got[2].err == nil || !hasProblem(problems, "c", LimitExceeded, "max_members 2 for the message") {
		t.Errorf("visited %d, problems %+v, err %v", len(got), problems, err)
	}
}

// Test7zHeaderNumber: the UINT64 encoding round-trips through the parser.
func Test7zHeaderNumber(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0x3fff, 0x4000, 1<<21 - 1, 1 << 21, 1<<28 - 1, 1 << 28, 1<<32 - 1, 1<<49 - 1, 1 << 49, 1<<56 - 1, 1 << 56, 1<<64 - 1} {
		b := num7z(v)
		p := &hdrParser{r: bytes.NewReader(b), left: int64(len(b))}
		got, err := p.number()
		if err != nil || got != v || p.left != 0 {
			t.Errorf("%#x: encoded % x, read %#x, %v, %d left", v, b, got, err, p.left)
		}
	}
}
