package jobproto

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Names on the wire. The header keys are in canonical MIME form, as
// net/http stores them.
const (
	// Scheme is the Authorization scheme and the first line of a canonical
	// request.
	Scheme = "AVS1-HMAC-SHA256"
	// responseScheme starts a canonical response, so that a request
	// signature can never pass for a response signature or the reverse.
	responseScheme = "AVS1-HMAC-SHA256-RESPONSE"

	HeaderAuthorization = "Authorization"
	HeaderMeta          = "Avs-Meta"
	HeaderContentSHA256 = "Avs-Content-Sha256"
	HeaderSignature     = "Avs-Signature"

	PathScan = "/v1/scan"
	PathInfo = "/v1/info"
)

// maxHeaderLen bounds what the parser looks at; a valid header with the
// longest key id is well under 300 bytes.
const maxHeaderLen = 1024

// emptyDigest is the SHA-256 of no bytes, the body digest of GET /v1/info.
var emptyDigest = digestHex(nil)

// Signature is the parameter list of an Authorization or Avs-Signature
// header: who signed (KeyID), when (Timestamp, unix seconds), a random
// Nonce (32 lowercase hex digits) and the HMAC itself.
type Signature struct {
	KeyID     string
	Timestamp int64
	Nonce     string
	MAC       []byte
}

// ParseAuthorization parses an Authorization header value:
//
//	AVS1-HMAC-SHA256 key=<keyid>, ts=<unix seconds>, nonce=<32 hex>, sig=<64 hex>
//
// The scheme is matched without regard to case (RFC 9110 section 11.1);
// parameter values are tokens and never quoted.
func ParseAuthorization(v string) (Signature, error) {
	if len(v) > maxHeaderLen {
		return Signature{}, errors.New("authorization: header too long")
	}
	scheme, rest, ok := strings.Cut(v, " ")
	if !ok || !strings.EqualFold(scheme, Scheme) {
		return Signature{}, fmt.Errorf("authorization: scheme is not %s", Scheme)
	}
	s, err := parseParams(rest)
	if err != nil {
		return Signature{}, fmt.Errorf("authorization: %w", err)
	}
	return s, nil
}

// ParseSignature parses an Avs-Signature header value, the parameters of
// ParseAuthorization without the scheme.
func ParseSignature(v string) (Signature, error) {
	if len(v) > maxHeaderLen {
		return Signature{}, errors.New("signature: header too long")
	}
	s, err := parseParams(v)
	if err != nil {
		return Signature{}, fmt.Errorf("signature: %w", err)
	}
	return s, nil
}

// FormatAuthorization is the Authorization header value for s.
func FormatAuthorization(s Signature) string {
	return Scheme + " " + FormatSignature(s)
}

// FormatSignature is the Avs-Signature header value for s.
func FormatSignature(s Signature) string {
	return fmt.Sprintf("key=%s, ts=%d, nonce=%s, sig=%x", s.KeyID, s.Timestamp, s.Nonce, s.MAC)
}

func parseParams(v string) (Signature, error) {
	var s Signature
	var seen [4]bool
	for p := range strings.SplitSeq(v, ",") {
		p = strings.Trim(p, " \t")
		name, value, ok := strings.Cut(p, "=")
		if !ok {
			return Signature{}, errors.New("parameter without '='")
		}
		var i int
		switch strings.ToLower(name) {
		case "key":
			i = 0
			if !ValidKeyID(value) {
				return Signature{}, errors.New("key: want 1-64 of A-Z a-z 0-9 . _ -")
			}
			s.KeyID = value
		case "ts":
			i = 1
			ts, err := parseTimestamp(value)
			if err != nil {
				return Signature{}, err
			}
			s.Timestamp = ts
		case "nonce":
			i = 2
			if !isLowerHex(value, 32) {
				return Signature{}, errors.New("nonce: want 32 lowercase hex digits")
			}
			s.Nonce = value
		case "sig":
			i = 3
			if len(value) != 2*sha256.Size {
				return Signature{}, errors.New("sig: want 64 hex digits")
			}
			mac, err := hex.DecodeString(value)
			if err != nil {
				return Signature{}, errors.New("sig: want 64 hex digits")
			}
			s.MAC = mac
		default:
			return Signature{}, errors.New("unknown parameter")
		}
		if seen[i] {
			return Signature{}, fmt.Errorf("parameter %s repeated", strings.ToLower(name))
		}
		seen[i] = true
	}
	for i, name := range []string{"key", "ts", "nonce", "sig"} {
		if !seen[i] {
			return Signature{}, fmt.Errorf("parameter %s missing", name)
		}
	}
	return s, nil
}

// parseTimestamp accepts plain decimal digits only: no sign, no spaces, so
// that one header has one spelling.
func parseTimestamp(v string) (int64, error) {
	if v == "" || len(v) > 18 {
		return 0, errors.New("ts: want unix seconds")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, errors.New("ts: want unix seconds")
		}
	}
	ts, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, errors.New("ts: want unix seconds")
	}
	return ts, nil
}

// ValidKeyID reports whether id is 1-64 of [A-Za-z0-9._-]: a token that
// cannot break a header, a canonical string or a file name.
func ValidKeyID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func isLowerHex(v string, n int) bool {
	if len(v) != n {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// validDigest reports whether v is a SHA-256 in lowercase hex, the form of
// Avs-Content-Sha256.
func validDigest(v string) bool { return isLowerHex(v, 2*sha256.Size) }

func digestHex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// newNonce returns 16 random bytes in hex.
func newNonce() string {
	var b [16]byte
	rand.Read(b[:]) // never fails (crypto/rand, Go 1.24)
	return hex.EncodeToString(b[:])
}

// canonicalRequest is the string a request signature covers. Every field
// but the last is a token without newlines (checked by the parser or set by
// net/http), and the meta, a header value, cannot hold one either, so the
// lines are unambiguous.
func canonicalRequest(method, target, keyID string, ts int64, nonce, digest, meta string) string {
	return strings.Join([]string{
		Scheme, method, target, keyID, strconv.FormatInt(ts, 10), nonce, digest, meta,
	}, "\n")
}

// canonicalResponse is the string a response signature covers: the request
// it answers (method, target, the request's nonce), the status and the body.
func canonicalResponse(method, target, keyID string, ts int64, nonce, digest string, status int, requestNonce string) string {
	return strings.Join([]string{
		responseScheme, method, target, keyID, strconv.FormatInt(ts, 10), nonce, digest,
		strconv.Itoa(status), requestNonce,
	}, "\n")
}

func computeMAC(secret []byte, canonical string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(canonical))
	return m.Sum(nil)
}

// sign returns the signature of canonical with key k at ts.
func sign(k Key, ts int64, nonce, canonical string) Signature {
	return Signature{KeyID: k.ID, Timestamp: ts, Nonce: nonce, MAC: computeMAC(k.Secret, canonical)}
}

// verifyMAC compares in constant time.
func verifyMAC(k Key, canonical string, mac []byte) bool {
	return hmac.Equal(computeMAC(k.Secret, canonical), mac)
}
