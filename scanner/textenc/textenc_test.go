package textenc

import (
	"encoding/base64"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/avstation/avstation/scanner/textenc/textenctest"
)

// found is one block as a test sees it.
type found struct {
	enc   Encoding
	name  string
	data  string
	ended bool
	gaps  int
}

// findAll is every block NewFinder finds in text, checked to be what
// NewFinderSize finds too: a buffer the text's size changes nothing.
func findAll(t testing.TB, text string) []found {
	t.Helper()
	got := findWith(t, NewFinder(strings.NewReader(text)))
	if sized := findWith(t, NewFinderSize(strings.NewReader(text), int64(len(text)))); !slices.Equal(got, sized) {
		t.Fatalf("NewFinderSize found %+v; NewFinder %+v", sized, got)
	}
	return got
}

func findWith(t testing.TB, f *Finder) []found {
	t.Helper()
	var out []found
	for {
		b, r, err := f.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		data, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("reading block: %v", err)
		}
		out = append(out, found{b.Encoding, b.Name, string(data), b.Ended, b.Gaps})
	}
}

// pyUU is what Python's binascii.b2a_uu (an independent encoder) gives
// for "hello world\n\x00\x00\x00", with backtick=False and True.
const (
	pyUUSpace    = "/:&5L;&\\@=V]R;&0*    \n"
	pyUUBacktick = "/:&5L;&\\@=V]R;&0*````\n"
	hello        = "hello world\n\x00\x00\x00"
)

func TestFinderUU(t *testing.T) {
	eicar := "X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
	for _, tc := range []struct {
		name, text string
		want       []found
	}{
		{"backtick zero, LF", "hi\nbegin 644 hello.txt\n" + pyUUBacktick + "`\nend\nbye\n",
			[]found{{UU, "hello.txt", hello, true, 0}}},
		{"space zero, CRLF", "begin 644 hello.txt\r\n" + strings.ReplaceAll(pyUUSpace, "\n", "\r\n") + " \r\nend\r\n",
			[]found{{UU, "hello.txt", hello, true, 0}}},
		{"trailing blanks stripped in transit", "begin 0644 a b.bin\n" + strings.TrimRight(pyUUSpace, " \n") + "\n\nend\n",
			[]found{{UU, "a b.bin", hello, true, 0}}},
		{"no zero-length line before end", "begin 644 x\n" + pyUUBacktick + "end\n",
			[]found{{UU, "x", hello, true, 0}}},
		{"truncated at the end of the text", "begin 644 x\n" + pyUUBacktick,
			[]found{{UU, "x", hello, false, 0}}},
		{"cut short, text follows", "begin 644 x\n" + pyUUBacktick + "thanks, see you\n",
			[]found{{UU, "x", hello, false, 0}}},
		{"a foreign line between data lines is a gap", "begin 644 x\n" + pyUUBacktick + "-- not data\n" + pyUUBacktick + "`\nend\n",
			[]found{{UU, "x", hello + hello, true, 1}}},
		{"eicar in 45-byte lines", "begin 644 eicar.com\n" + textenctest.Uuencode([]byte(eicar)) + "`\nend\n",
			[]found{{UU, "eicar.com", eicar, true, 0}}},
		{"two blocks, the first without end", "begin 644 a\n" + pyUUBacktick + "begin 600 b\n" + pyUUBacktick + "`\nend\n",
			[]found{{UU, "a", hello, false, 0}, {UU, "b", hello, true, 0}}},
		{"begin-base64", "begin-base64 644 h.txt\n" + b64lines(hello) + "====\n",
			[]found{{UUBase64, "h.txt", hello, true, 0}}},
		{"not begin lines", "begin 6448 x\nbegin 644\nbegin 9 x\nbeginning 644 x\nbegin-base64 x y\n", nil},
		{"prose after a begin line decodes to nothing", "begin 644 plan\nwe begin at noon.\n",
			[]found{{UU, "plan", "", false, 0}}},
		{"empty file", "begin 644 empty\n`\nend\n", []found{{UU, "empty", "", true, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := findAll(t, tc.text)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d blocks %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("block %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestFinderYEnc(t *testing.T) {
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}
	for _, tc := range []struct {
		name, text string
		want       []found
	}{
		{"every byte, escapes", "=ybegin line=128 size=256 name=all bytes.bin\r\n" + yencode(all, 128, "\r\n") + "=yend size=256\r\n",
			[]found{{YEnc, "all bytes.bin", string(all), true, 0}}},
		{"multipart part line", "=ybegin part=1 line=128 size=256 name=p.bin\n=ypart begin=1 end=256\n" + yencode(all, 64, "\n") + "=yend size=256 part=1\n",
			[]found{{YEnc, "p.bin", string(all), true, 0}}},
		{"literal escape sequence", "=ybegin size=4 name=e\n=}=M=J=@\n=yend\n",
			[]found{{YEnc, "e", "\x13\xe3\xe0\xd6", true, 0}}}, // escaped =, CR, LF, NUL
		{"truncated", "=ybegin line=128 size=256 name=t\n" + yencode(all[:100], 128, "\n"),
			[]found{{YEnc, "t", string(all[:100]), false, 0}}},
		{"no size, no name: not a begin line", "=ybegin of the text\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := findAll(t, tc.text)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d blocks %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("block %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestFinderBinHex(t *testing.T) {
	data := "MZ" + strings.Repeat("A", 300) + "\x90tail" // a run and a literal 0x90
	for _, tc := range []struct {
		name, text string
		want       []found
	}{
		{"with run-length encoding", "hi\n(This file must be converted with BinHex 4.0)\n\n" + textenctest.BinHex("setup.exe", data, true) + "\nbye\n",
			[]found{{BinHex, "setup.exe", data, true, 0}}},
		{"without", "(This file must be converted with BinHex 4.0)\r\n" + strings.ReplaceAll(textenctest.BinHex("a.exe", "MZ\x00\x01", false), "\n", "\r\n"),
			[]found{{BinHex, "a.exe", "MZ\x00\x01", true, 0}}},
		{"cut short", "(This file must be converted with BinHex 4.0)\n" + strings.TrimSuffix(textenctest.BinHex("long.bin", data, true), ":"),
			[]found{{BinHex, "long.bin", data, false, 0}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := findAll(t, tc.text)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d blocks %+v, want %+v", len(got), got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("block %d = %+v, want %+v", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestBinhexAlphabet(t *testing.T) {
	if len(binhexAlphabet) != 64 {
		t.Fatalf("alphabet has %d characters", len(binhexAlphabet))
	}
}

// TestLongLine: a line over maxLine is neither data nor a begin line, and
// the finder goes on after it.
func TestLongLine(t *testing.T) {
	text := "begin 644 x\n" + pyUUBacktick + strings.Repeat("M", maxLine+10) + "\n" + pyUUBacktick + "`\nend\nbegin 644 y\n`\nend\n"
	got := findAll(t, text)
	want := []found{{UU, "x", hello + hello, true, 1}, {UU, "y", "", true, 0}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("got %+v, want %+v", got, want)
	}
}

func b64lines(s string) string {
	e := base64.StdEncoding.EncodeToString([]byte(s))
	var b strings.Builder
	for len(e) > 0 {
		n := min(len(e), 60)
		b.WriteString(e[:n] + "\n")
		e = e[n:]
	}
	return b.String()
}

// yencode escapes NUL, LF, CR, '=' and, at the start of a line, TAB,
// space and '.' (yEnc 1.3).
func yencode(data []byte, lineLen int, nl string) string {
	var b strings.Builder
	col := 0
	for _, c := range data {
		o := c + 42
		switch {
		case o == 0, o == '\n', o == '\r', o == '=', col == 0 && (o == '\t' || o == ' ' || o == '.'):
			b.WriteByte('=')
			b.WriteByte(o + 64)
			col += 2
		default:
			b.WriteByte(o)
			col++
		}
		if col >= lineLen {
			b.WriteString(nl)
			col = 0
		}
	}
	if col > 0 {
		b.WriteString(nl)
	}
	return b.String()
}
