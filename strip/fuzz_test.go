package strip

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/emersion/go-message"
)

// FuzzBody strips one path from arbitrary input. It must not panic; an
// error must be ErrCannotStrip; a success must leave the body as it was
// but for the one replaced part, and keep a message go-message reads whole
// readable whole. Seeds are in testdata/fuzz/FuzzBody.
func FuzzBody(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, path string) {
		var out bytes.Buffer
		res, err := Body(bytes.NewReader(data), int64(len(data)), []Removal{{Path: path, FileName: "f", Threat: "t"}}, nil, &out)
		if err != nil {
			if !errors.Is(err, ErrCannotStrip) {
				t.Fatalf("error not ErrCannotStrip: %v", err)
			}
			return
		}
		if len(res.Removed) != 1 {
			t.Fatalf("Removed = %v, want one", res.Removed)
		}
		body := fuzzBody(data)
		if !replacedOnce(body, out.Bytes(), DefaultReplacement(res.Removed[0])) {
			t.Fatalf("output is not the input with one part replaced:\nin  %q\nout %q", body, out.Bytes())
		}
		header := data[:len(data)-len(body)]
		if walks(data) && !walks(append(header[:len(header):len(header)], out.Bytes()...)) {
			t.Fatalf("go-message reads the input but not the output %q", out.Bytes())
		}
	})
}

// fuzzBody is what follows the first empty line, as Body reads it.
func fuzzBody(data []byte) []byte {
	rest := data
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return nil
		}
		line := rest[:i+1]
		rest = rest[i+1:]
		if string(line) == "\n" || string(line) == "\r\n" {
			return rest
		}
	}
	return nil
}

// replacedOnce says whether out is body with one run of whole lines,
// after a line break, replaced by a replacement part with text.
func replacedOnce(body, out []byte, text string) bool {
	for _, nl := range []string{"\r\n", "\n"} {
		repl := []byte(replPart(text, nl))
		for off := 0; ; {
			i := bytes.Index(out[off:], repl)
			if i < 0 {
				break
			}
			a := off + i
			tail := out[a+len(repl):]
			if bytes.Equal(out[:a], body[:min(a, len(body))]) && bytes.HasSuffix(body, tail) &&
				len(body)-len(tail) >= a && bytes.HasSuffix(body[:a], []byte(nl)) {
				return true
			}
			off = a + 1
		}
	}
	return false
}

// walks says whether go-message reads the whole message without error.
func walks(msg []byte) bool {
	e, err := message.Read(bytes.NewReader(msg))
	if err != nil && !message.IsUnknownCharset(err) && !message.IsUnknownEncoding(err) {
		return false
	}
	err = e.Walk(func(_ []int, e *message.Entity, err error) error {
		// An unknown encoding or charset is this part's own business:
		// walk on, so that "walks" means the whole tree was read.
		if err != nil && (message.IsUnknownCharset(err) || message.IsUnknownEncoding(err)) {
			return nil
		}
		if err != nil {
			return err
		}
		if e.MultipartReader() == nil {
			_, err = io.Copy(io.Discard, e.Body)
		}
		return err
	})
	return err == nil || message.IsUnknownCharset(err) || message.IsUnknownEncoding(err) ||
		strings.Contains(err.Error(), "unknown charset")
}
