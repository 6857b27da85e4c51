// Package mimepart is the one model of a message's MIME structure that the
// scanner, the policy, strip and the quarantine share, so that they agree:
// Index reads a message once into a tree of entities with their offsets,
// parsed headers (ParseHeader) and IMAP-style part paths (RFC 3501 6.4.5:
// "1", "2", "2/1"); findings append archive members by name
// ("2/invoice.zip/doc.exe"), which Split takes apart. The scanner walks
// the index, strip rewrites by its offsets, the quarantine extracts by its
// paths.
package mimepart

import (
	"mime"
	"strconv"
	"strings"

	"github.com/emersion/go-message/textproto"
)

// Split cuts a finding's path into its MIME part and the archive names and
// member within it: "2/invoice.zip/inner.7z/doc.exe" → "2",
// [invoice.zip inner.7z doc.exe]. The MIME part is the leading segments
// that are part numbers (all digits, no leading zero); "" and "0" are the
// message as a whole. An archive whose file name is all digits cannot be
// told from a part number.
func Split(path string) (part string, inside []string) {
	segs := strings.Split(path, "/")
	i := 0
	for i < len(segs) && isPartNumber(segs[i]) {
		i++
	}
	part = strings.Join(segs[:i], "/")
	if i < len(segs) && !(i == 0 && len(segs) == 1 && (segs[0] == "" || segs[0] == "0")) {
		inside = segs[i:]
	}
	return part, inside
}

// Part is the MIME part of a finding's path (Split's first result).
func Part(path string) string {
	p, _ := Split(path)
	return p
}

func isPartNumber(s string) bool {
	if s == "" || s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// ContentType parses an entity's Content-Type: a missing one, or one
// without a type/subtype, is text/plain (RFC 2045 5.2); parameters are
// read leniently (lenientParams) when the field does not parse. The type
// is in lower case; params is never nil.
func ContentType(h textproto.Header) (string, map[string]string) {
	v := h.Get("Content-Type")
	if v == "" {
		return "text/plain", map[string]string{}
	}
	if t, params, err := mime.ParseMediaType(v); err == nil {
		return strings.ToLower(t), params
	}
	t, ps := lenientParams(v)
	major, minor, ok := strings.Cut(t, "/")
	if !ok || !isToken(major) || !isToken(minor) {
		return "text/plain", map[string]string{}
	}
	return t, paramMap(ps)
}

// Child is the path of the i-th part inside the part at path: "2" inside
// "" (the message), "2/1" inside "2".
func Child(path string, i int) string {
	if path == "" {
		return strconv.Itoa(i)
	}
	return path + "/" + strconv.Itoa(i)
}
