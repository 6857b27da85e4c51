package mimepart

import (
	"errors"
	"fmt"
	"mime"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Info is what a part's header says about it. ParseHeader is its one
// source, so that the scanner, strip and the quarantine read a header
// alike.
type Info struct {
	ContentType      string            // lower case; text/plain when missing or unparseable
	Params           map[string]string // Content-Type parameters; never nil
	Boundary         string            // of a multipart/*; "" otherwise
	TransferEncoding string            // lower case, trimmed; "" when none
	Disposition      string            // lower case disposition type; "" when none
	// FileName is the part's name as findings report it: the
	// Content-Disposition filename, else the Content-Type name.
	FileName string
	// FileNames is every name the part carries, each once, FileName
	// first: each filename and name parameter, decoded as a client may
	// decode it, and its raw form where decoding failed.
	FileNames []string
	// HeaderProblems are Content-* fields a reader has to guess at: there
	// twice, unparseable, or with two boundaries. The index makes each an
	// unscannable anomaly.
	HeaderProblems []string
	// Attachment: a file rather than the text of the message — a
	// disposition of attachment, a file name, or a type that is not text.
	Attachment bool
}

// Multipart says whether the part is a multipart with a boundary to cut at.
func (i Info) Multipart() bool {
	return strings.HasPrefix(i.ContentType, "multipart/") && i.Boundary != ""
}

// AttachedMessage says whether the part holds a message (RFC 2046 5.2.1).
func (i Info) AttachedMessage() bool {
	return i.ContentType == "message/rfc822" || i.ContentType == "message/global"
}

// IdentityEncoding says whether the transfer encoding leaves the body's
// bytes as they are (RFC 2045 6.1).
func (i Info) IdentityEncoding() bool {
	switch i.TransferEncoding {
	case "", "7bit", "8bit", "binary":
		return true
	}
	return false
}

// ParseHeader reads the Content-* fields of a part's header, as leniently
// as mail clients do, since what a client shows is what the policy must
// judge. File names are every name the part carries (see names); the
// fields a reader would have to guess at are HeaderProblems.
func ParseHeader(h textproto.Header) Info {
	var in Info
	in.ContentType, in.Params = ContentType(h)
	_, ctParams := lenientParams(h.Get("Content-Type"))
	if strings.HasPrefix(in.ContentType, "multipart/") {
		in.Boundary = in.Params["boundary"]
		if bs := values(ctParams, "boundary"); len(bs) > 1 {
			in.HeaderProblems = append(in.HeaderProblems, fmt.Sprintf("Content-Type with two boundary values %.80q and %.80q", bs[0], bs[1]))
		}
	}
	in.TransferEncoding = strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	disp, _ := lenientParams(h.Get("Content-Disposition"))
	if h.Has("Content-Disposition") {
		in.Disposition = disp
	}
	// Every field's names: a second Content-Type is a problem, and its
	// name may be the one a client shows.
	for _, f := range []struct{ key, param string }{{"Content-Disposition", "filename"}, {"Content-Type", "name"}} {
		for _, v := range h.Values(f.key) {
			_, ps := lenientParams(v)
			for _, n := range paramNames(ps)(f.param) {
				if !contains(in.FileNames, n) {
					in.FileNames = append(in.FileNames, n)
				}
			}
		}
	}
	if len(in.FileNames) > 0 {
		in.FileName = in.FileNames[0]
	}
	in.Attachment = in.FileName != "" || in.Disposition == "attachment" || !strings.HasPrefix(in.ContentType, "text/")
	in.HeaderProblems = append(in.HeaderProblems, fieldProblems(h, len(in.HeaderProblems) > 0)...)
	return in
}

// fieldProblems are the Content-* fields that are there twice or do not
// parse: a reader would pick one of two, or guess, and the scan might not
// see the part as the recipient's client does. boundaryDone: the
// Content-Type's trouble is said already.
func fieldProblems(h textproto.Header, boundaryDone bool) []string {
	var out []string
	for _, k := range []string{"Content-Type", "Content-Disposition", "Content-Transfer-Encoding"} {
		vs := h.Values(k)
		switch {
		case len(vs) > 1:
			out = append(out, fmt.Sprintf("%d %s fields", len(vs), k))
		case len(vs) == 0, k == "Content-Type" && boundaryDone:
		case k == "Content-Transfer-Encoding":
			if !isToken(strings.TrimSpace(vs[0])) {
				out = append(out, fmt.Sprintf("unparseable %s %.80q", k, vs[0]))
			}
		default:
			t, _, err := mime.ParseMediaType(vs[0])
			if err != nil {
				// RFC 2045 allows comments; mime.ParseMediaType does not.
				t, _, err = mime.ParseMediaType(uncomment(vs[0]))
			}
			if err == nil && k == "Content-Type" && !strings.Contains(t, "/") {
				err = errors.New("no subtype")
			}
			if err != nil {
				out = append(out, fmt.Sprintf("unparseable %s %.80q: %v", k, vs[0], err))
			}
		}
	}
	return out
}

// uncomment drops (comments) outside quoted strings (RFC 5322 3.2.2).
func uncomment(s string) string {
	var b strings.Builder
	depth, quote := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && (quote || depth > 0):
			if depth == 0 {
				b.WriteString(s[i : i+2])
			}
			i++
			continue
		case quote:
			quote = c != '"'
		case c == '"' && depth == 0:
			quote = true
		case c == '(':
			depth++
			continue
		case c == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// isToken says whether s is an RFC 2045 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
