package scanner

import (
	"archive/zip"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/scanner/textenc/textenctest"
	"github.com/avstation/avstation/test/harness"
	"github.com/avstation/avstation/verdict"
)

// countingClamd counts the streams and bytes sent to a real clamd.
type countingClamd struct {
	c       *clamd.Client
	mu      sync.Mutex
	streams int
	bytes   int64
}

func (c *countingClamd) Scan(ctx context.Context, r io.Reader) (clamd.Result, error) {
	cr := &countReader{r: r}
	res, err := c.c.Scan(ctx, cr)
	c.mu.Lock()
	c.streams++
	c.bytes += cr.n
	c.mu.Unlock()
	return res, err
}

func (c *countingClamd) Version(ctx context.Context) (clamd.Version, error) { return c.c.Version(ctx) }

type countReader struct {
	r io.Reader
	n int64
}

func (r *countReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.n += int64(n)
	return n, err
}

// startClamd starts the harness's clamd for the test and is a client of it.
func startClamd(t *testing.T) *clamd.Client {
	t.Helper()
	client, err := clamd.New(harness.StartClamd(t).Addr)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

// TestClamdCoverage: with a real clamd at its default limits, what clamd
// finds in the raw message alone (rawFinds, asserted: it is why the
// station does or does not send the part), and that the scanner finds
// EICAR in every case, naming the file. A case where clamd misses EICAR
// raw fails if the station does not send that part.
func TestClamdCoverage(t *testing.T) {
	client := startClamd(t)
	eicar := string(harness.EICAR())
	zipNest := func(n int) string {
		z := eicar
		for i := range n {
			z = string(plainZip(t, fmt.Sprintf("level%d.zip", i), z))
		}
		return z
	}
	const banner = "(This file must be converted with BinHex 4.0)\n"
	sfx := "MZ\x90\x00" + strings.Repeat("stub code ", 3000)
	tests := []struct {
		name     string
		msg      string
		rawFinds bool
		path     string // of the first infected finding
	}{
		{"attachment", multipart(textPart, attachment("e.com", eicar)), true, "2"},
		{"uuencoded in the text", singleText(uuencodeText("e.com", eicar)), true, "1/e.com"},
		{"BinHex in the text", singleText(banner + textenctest.BinHex("e.com", eicar, false) + "\n"), true, "1/e.com"},
		{"begin-base64 in the text", singleText("begin-base64 644 e.com\n" + b64(eicar) + "\n====\n"), false, "1/e.com"},
		{"yEnc in the text", singleText(yencText("e.com", eicar)), false, "1/e.com"},
		{"zip with one byte before it", multipart(textPart, attachment("e.zip", "\x00"+string(plainZip(t, "e.com", eicar)))), false, "2/e.zip/e.com"},
		{"self-extracting zip", multipart(textPart, attachment("e.zip", sfx+string(plainZip(t, "e.com", eicar)))), false, "2/e.zip/e.com"},
		{"zip with its password in the text", multipart("Content-Type: text/plain\n\nthe password is s3cret",
			attachment("e.zip", string(zipCrypto(t, "e.com", eicar, "s3cret")))), false, "2/e.zip/e.com"},
		{"gzip", multipart(textPart, attachment("e.gz", gzipOf(t, eicar))), true, "2/e.gz/"},
		{"7z", multipart(textPart, attachment("e.7z", sevenZipOf(t, "e.com", eicar))), true, "2/e.7z/e.com"},
		{"15 zips deep", multipart(textPart, attachment("e.zip", zipNest(15))), true, "2/e.zip/level14.zip/"},
		{"16 zips deep: past MaxRecursion", multipart(textPart, attachment("e.zip", zipNest(16))), false, "2/e.zip/level15.zip/"},
		{"MIME 18 levels deep", nested(18, attachment("e.com", eicar)), true, strings.Repeat("1/", 17) + "1"},
		{"MIME 19 levels deep: past MaxRecursion", nested(19, attachment("e.com", eicar)), false, strings.Repeat("1/", 18) + "1"},
		{"after 10000 empty zip entries: past MaxFiles", multipart(textPart, attachment("e.zip", emptyEntriesThen(t, 10000, eicar))), false, "2/e.zip/last.com"},
		// Directories do not count against clamd's MaxFiles (nor the estimate).
		{"after 10000 zip directories", multipart(textPart, attachment("e.zip", entriesThen(t, "d%d/", 10000, eicar))), true, "2/e.zip/last.com"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(crlf(tt.msg))
			res, err := client.Scan(context.Background(), bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			if res.Found != tt.rawFinds {
				t.Errorf("clamd alone finds EICAR in the raw message: %v (%q), want %v: what the station sends clamd assumes it", res.Found, res.Raw, tt.rawFinds)
			}
			opt := Options{Name: "test", MaxDepth: 30, MaxArchiveDepth: 20, MaxMembers: 20000, TryPasswords: true}
			v, err := New(opt, Clamd(client)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			f, ok := v.First(verdict.Infected)
			if !ok || !strings.HasPrefix(f.Threat, harness.EicarSignature) || !strings.HasPrefix(f.Path, tt.path) {
				t.Errorf("first infected finding %+v (%v), want EICAR at %s…; findings %+v", f, ok, tt.path, v.Findings)
			}
		})
	}
}

// TestClamdSentOnce: a clean message with a zip goes to a real clamd once,
// as the raw message: clamd unpacks the part and the zip itself.
func TestClamdSentOnce(t *testing.T) {
	client := startClamd(t)
	c := &countingClamd{c: client}
	raw := []byte(crlf(multipart(textPart, attachment("a.zip", zipOfN(t, 20, "clean")))))
	v, err := New(Options{Name: "test"}, Clamd(c)).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	if v.Status != verdict.Clean || c.streams != 1 || c.bytes != int64(len(raw)) {
		t.Errorf("status %s, %d streams of %d bytes to clamd, want clean, 1 stream of %d", v.Status, c.streams, c.bytes, len(raw))
	}
}

// emptyEntriesThen is a zip of n empty files and then data as last.com.
func emptyEntriesThen(t *testing.T, n int, data string) string {
	t.Helper()
	return entriesThen(t, "e%d", n, data)
}

// entriesThen is a zip of n empty entries named by format (a directory
// when it ends in a slash), then last.com holding data.
func entriesThen(t *testing.T, format string, n int, data string) string {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for i := range n {
		if _, err := w.Create(fmt.Sprintf(format, i)); err != nil {
			t.Fatal(err)
		}
	}
	f, _ := w.Create("last.com")
	f.Write([]byte(data))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// sevenZipOf is a 7z (LZMA) of one file made by 7z(1).
func sevenZipOf(t *testing.T, name, data string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(harness.Program(t, "7z"), "a", "-bd", "out.7z", name)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("7z: %v %s", err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.7z"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestClamdSkeleton: with a real clamd, a message's large base64
// attachments are cut out of what clamd's mail parser is sent and sent
// decoded instead (skeleton.go): a clean message costs two streams, one of
// them the small rest of the message; EICAR in a cut zip is found and
// named by its member; and what could hide a part from the cut (a line
// that may be a boundary inside the body, a body that does not decode)
// has the whole message sent too.
func TestClamdSkeleton(t *testing.T) {
	client := startClamd(t)
	eicar := string(harness.EICAR())
	noise := randomText(100 << 10)
	// A whole number of base64 quanta (no padding), so that a character
	// added after it is one the alphabet has but that does not decode.
	zipWith := func(comment string) string {
		var zb bytes.Buffer
		zw := zip.NewWriter(&zb)
		for _, m := range []struct{ name, content string }{{"noise.bin", noise}, {"eicar.com", eicar}} {
			f, _ := zw.CreateHeader(&zip.FileHeader{Name: m.name, Method: zip.Store})
			f.Write([]byte(m.content))
		}
		zw.SetComment(comment)
		zw.Close()
		return zb.String()
	}
	infectedZip := zipWith("")
	infectedZip = zipWith(strings.Repeat("c", (3-len(infectedZip)%3)%3))
	if len(infectedZip)%3 != 0 {
		t.Fatalf("zip of %d bytes: base64 of it would be padded", len(infectedZip))
	}
	cleanZip := string(plainZipStored(t, "noise.bin", noise))
	att := func(body string) string {
		return "Content-Type: application/zip\nContent-Disposition: attachment; filename=\"e.zip\"\nContent-Transfer-Encoding: base64\n\n" + body
	}
	tests := []struct {
		name  string
		msg   string
		clean bool
		path  string // of the first infected finding
		whole bool   // the whole message is sent too
	}{
		{"clean", multipart(textPart, att(wrapped(cleanZip))), true, "", false},
		{"EICAR in the zip", multipart(textPart, att(wrapped(infectedZip))), false, "2/e.zip/eicar.com", false},
		{"EICAR behind a line that may be a boundary", multipart(textPart, att(wrapped(cleanZip)+"\n--BBX\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"+b64(eicar))), false, "", true},
		{"EICAR zip in a body that does not decode", multipart(textPart, att(wrapped(infectedZip)+"\nA")), false, "2/e.zip/eicar.com", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := []byte(crlf(tt.msg))
			c := &countingClamd{c: client}
			var sizes []int64
			v, err := New(Options{Name: "test"}, Clamd(sizeRecorder{c, &sizes})).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
			if err != nil {
				t.Fatal(err)
			}
			if tt.clean {
				if v.Status != verdict.Clean || len(sizes) != 2 || sizes[0] > 1<<10 || sizes[1] != int64(len(cleanZip)) {
					t.Errorf("status %s, streams of %v bytes; want clean, the %d-byte message less its attachment (under 1 KiB) then the %d-byte zip",
						v.Status, sizes, len(raw), len(cleanZip))
				}
				return
			}
			f, ok := v.First(verdict.Infected)
			if !ok || !strings.HasPrefix(f.Threat, harness.EicarSignature) || !strings.HasPrefix(f.Path, tt.path) {
				t.Errorf("first infected finding %+v (%v), want EICAR at %s…; findings %+v", f, ok, tt.path, v.Findings)
			}
			if sentWhole := slices.Contains(sizes, int64(len(raw))); sentWhole != tt.whole {
				t.Errorf("streams of %v bytes: the whole %d-byte message sent %v, want %v", sizes, len(raw), sentWhole, tt.whole)
			}
		})
	}
}

// TestClamdWholeMessage: with clamd_whole_message clamd is sent the raw
// message whole, once, and finds EICAR in a large zip attachment itself.
func TestClamdWholeMessage(t *testing.T) {
	client := startClamd(t)
	z := plainZipStored(t, "noise.bin", randomText(50<<10)+string(harness.EICAR()))
	raw := []byte(crlf(multipart(textPart, "Content-Type: application/zip\nContent-Disposition: attachment; filename=\"e.zip\"\nContent-Transfer-Encoding: base64\n\n"+wrapped(string(z)))))
	for _, whole := range []bool{false, true} {
		c := &countingClamd{c: client}
		var sizes []int64
		v, err := New(Options{Name: "test", ClamdWhole: whole}, Clamd(sizeRecorder{c, &sizes})).Scan(context.Background(), bytes.NewReader(raw), int64(len(raw)))
		if err != nil || v.Status != verdict.Infected {
			t.Fatalf("whole %v: %v, %v; want infected", whole, v, err)
		}
		if sentWhole := sizes[0] == int64(len(raw)); sentWhole != whole {
			t.Errorf("clamd_whole_message %v: streams of %v bytes; the %d-byte message sent first %v", whole, sizes, len(raw), sentWhole)
		}
	}
}

// sizeRecorder notes the size of each stream sent to clamd, in order.
type sizeRecorder struct {
	c     *countingClamd
	sizes *[]int64
}

func (s sizeRecorder) Scan(ctx context.Context, r io.Reader) (clamd.Result, error) {
	before := s.c.bytes
	res, err := s.c.Scan(ctx, r)
	*s.sizes = append(*s.sizes, s.c.bytes-before)
	return res, err
}

func (s sizeRecorder) Version(ctx context.Context) (clamd.Version, error) { return s.c.Version(ctx) }
