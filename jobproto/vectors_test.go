package jobproto

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/avstation/avstation/verdict"
)

// protocolDoc is the wire format as written for other implementers. These
// tests read its vectors, so the document cannot drift from the code.
const protocolDoc = "../docs/job-protocol.md"

// docVector is one `json avs-vector` block of the document.
type docVector struct {
	Vector string `json:"vector"`
	Kind   string `json:"kind"` // "request" or "response"
	Secret string `json:"secret"`
	KeyID  string `json:"key_id"`
	Method string `json:"method"`
	Target string `json:"target"`
	TS     int64  `json:"ts"`
	Nonce  string `json:"nonce"`
	// requests
	MetaFields    *Meta  `json:"meta_fields"`
	Meta          string `json:"meta"`
	Authorization string `json:"authorization"`
	// responses
	Status       int    `json:"status"`
	RequestNonce string `json:"request_nonce"`
	Signature    string `json:"signature"`

	Body       string `json:"body"`
	BodySHA256 string `json:"body_sha256"`
	Canonical  string `json:"canonical"`
	Sig        string `json:"sig"`
}

type docBlock struct{ info, text string }

type protocolVectors struct {
	vectors   []docVector
	canonical map[string]string // "text avs-canonical NAME" blocks, final line break dropped
	exchange  map[string]string // "http avs-exchange NAME" blocks
}

// fencedBlocks returns the fenced code blocks of a markdown text with
// their info strings.
func fencedBlocks(t *testing.T, doc string) []docBlock {
	t.Helper()
	var blocks []docBlock
	var cur *docBlock
	for line := range strings.SplitAfterSeq(doc, "\n") {
		trimmed := strings.TrimRight(line, "\n")
		switch {
		case cur == nil && strings.HasPrefix(trimmed, "```"):
			cur = &docBlock{info: strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line
		}
	}
	if cur != nil {
		t.Fatalf("%s: fenced block %q not closed", protocolDoc, cur.info)
	}
	return blocks
}

func readProtocolDoc(t *testing.T) protocolVectors {
	t.Helper()
	data, err := os.ReadFile(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	pv := protocolVectors{canonical: map[string]string{}, exchange: map[string]string{}}
	names := map[string]bool{}
	for _, b := range fencedBlocks(t, string(data)) {
		f := strings.Fields(b.info)
		switch {
		case len(f) == 2 && f[1] == "avs-vector":
			var v docVector
			dec := json.NewDecoder(strings.NewReader(b.text))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&v); err != nil {
				t.Fatalf("%s: vector block: %v", protocolDoc, err)
			}
			if v.Vector == "" || names[v.Vector] {
				t.Fatalf("%s: vector name %q empty or repeated", protocolDoc, v.Vector)
			}
			names[v.Vector] = true
			pv.vectors = append(pv.vectors, v)
		case len(f) == 3 && f[1] == "avs-canonical":
			pv.canonical[f[2]] = strings.TrimSuffix(b.text, "\n")
		case len(f) == 3 && f[1] == "avs-exchange":
			pv.exchange[f[2]] = b.text
		}
	}
	kinds := map[string]int{}
	for _, v := range pv.vectors {
		kinds[v.Kind]++
	}
	if kinds["request"] < 2 || kinds["response"] < 2 || len(kinds) != 2 {
		t.Fatalf("%s: vectors by kind %v; want at least two requests and two responses, nothing else", protocolDoc, kinds)
	}
	return pv
}

func (v docVector) key() Key { return Key{ID: v.KeyID, Secret: []byte(v.Secret)} }

// TestProtocolDocVectors recomputes every vector of the document with the
// package's functions and, independently, with crypto/hmac over the
// documented canonical string.
func TestProtocolDocVectors(t *testing.T) {
	pv := readProtocolDoc(t)
	for _, v := range pv.vectors {
		t.Run(v.Vector, func(t *testing.T) {
			if got := digestHex([]byte(v.Body)); got != v.BodySHA256 {
				t.Errorf("body_sha256 %s, the body's SHA-256 is %s", v.BodySHA256, got)
			}
			var canonical string
			if v.Kind == "request" {
				canonical = canonicalRequest(v.Method, v.Target, v.KeyID, v.TS, v.Nonce, v.BodySHA256, v.Meta)
			} else {
				canonical = canonicalResponse(v.Method, v.Target, v.KeyID, v.TS, v.Nonce, v.BodySHA256, v.Status, v.RequestNonce)
			}
			if canonical != v.Canonical {
				t.Errorf("canonical\n%q\nthe code builds\n%q", v.Canonical, canonical)
			}
			text, ok := pv.canonical[v.Vector]
			if !ok {
				t.Errorf("no avs-canonical block for %s", v.Vector)
			} else if text != v.Canonical {
				t.Errorf("avs-canonical block\n%q\ndiffers from the vector's canonical\n%q", text, v.Canonical)
			}

			// Independently of the package: HMAC-SHA256 keyed by the
			// secret's bytes over the canonical string as documented.
			m := hmac.New(sha256.New, []byte(v.Secret))
			m.Write([]byte(v.Canonical))
			if got := hex.EncodeToString(m.Sum(nil)); got != v.Sig {
				t.Errorf("sig %s, HMAC-SHA256 of the documented canonical string is %s", v.Sig, got)
			}
			sig := sign(v.key(), v.TS, v.Nonce, canonical)
			if got := hex.EncodeToString(sig.MAC); got != v.Sig {
				t.Errorf("sig %s, the package signs %s", v.Sig, got)
			}
			if v.Kind == "request" {
				checkRequestHeader(t, v, sig)
			} else {
				checkResponseHeader(t, v, sig)
			}
		})
	}
}

func checkRequestHeader(t *testing.T, v docVector, sig Signature) {
	t.Helper()
	if got := FormatAuthorization(sig); got != v.Authorization {
		t.Errorf("authorization\n%s\nthe package writes\n%s", v.Authorization, got)
	}
	parsed, err := ParseAuthorization(v.Authorization)
	if err != nil {
		t.Fatalf("the documented Authorization does not parse: %v", err)
	}
	if !reflect.DeepEqual(parsed, sig) {
		t.Errorf("Authorization parses as %+v, want %+v", parsed, sig)
	}
	if v.MetaFields != nil {
		enc, err := encodeMeta(*v.MetaFields)
		if err != nil {
			t.Fatal(err)
		}
		if enc != v.Meta {
			t.Errorf("meta\n%s\navmilter encodes meta_fields as\n%s", v.Meta, enc)
		}
		dec, err := decodeMeta(v.Meta)
		if err != nil || !reflect.DeepEqual(dec, *v.MetaFields) {
			t.Errorf("meta decodes as %+v (%v), want meta_fields %+v", dec, err, *v.MetaFields)
		}
	}
	// The documented secret file line gives this key.
	ring, err := parseSecrets("doc", []byte(v.KeyID+" "+v.Secret+"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if k := ring.Signer(); k.ID != v.KeyID || string(k.Secret) != v.Secret {
		t.Errorf("secret file line loads key %q", k.ID)
	}
}

func checkResponseHeader(t *testing.T, v docVector, sig Signature) {
	t.Helper()
	if got := FormatSignature(sig); got != v.Signature {
		t.Errorf("signature\n%s\nthe package writes\n%s", v.Signature, got)
	}
	parsed, err := ParseSignature(v.Signature)
	if err != nil {
		t.Fatalf("the documented Avs-Signature does not parse: %v", err)
	}
	if !reflect.DeepEqual(parsed, sig) {
		t.Errorf("Avs-Signature parses as %+v, want %+v", parsed, sig)
	}
}

// exchangePair is a request vector and the response vector that answers it.
type exchangePair struct{ req, resp docVector }

func (pv protocolVectors) pairs(t *testing.T) []exchangePair {
	t.Helper()
	var out []exchangePair
	for _, resp := range pv.vectors {
		if resp.Kind != "response" {
			continue
		}
		found := false
		for _, req := range pv.vectors {
			if req.Kind == "request" && req.Nonce == resp.RequestNonce {
				out = append(out, exchangePair{req, resp})
				found = true
			}
		}
		if !found {
			t.Errorf("response vector %s answers no request vector (request_nonce %s)", resp.Vector, resp.RequestNonce)
		}
	}
	return out
}

// docRequest is the HTTP request of a vector, with exactly its headers.
func docRequest(t *testing.T, base string, v docVector) *http.Request {
	t.Helper()
	req, err := http.NewRequest(v.Method, base+v.Target, strings.NewReader(v.Body))
	if err != nil {
		t.Fatal(err)
	}
	if v.Body == "" {
		req.Body = http.NoBody
	}
	req.Header.Set(HeaderAuthorization, v.Authorization)
	req.Header.Set(HeaderContentSHA256, v.BodySHA256)
	if v.Meta != "" {
		req.Header.Set(HeaderMeta, v.Meta)
	}
	return req
}

// TestProtocolDocServer sends each documented request to a station whose
// clock reads the request's time: the station accepts it, answers with the
// documented body, signed so that the client accepts it, and refuses the
// same request a second time as the document says.
func TestProtocolDocServer(t *testing.T) {
	pv := readProtocolDoc(t)
	for _, p := range pv.pairs(t) {
		t.Run(p.req.Vector, func(t *testing.T) {
			keys, err := NewKeyRing(p.req.key())
			if err != nil {
				t.Fatal(err)
			}
			var gotMeta Meta
			var gotBody []byte
			srv := &Server{
				Keys:     keys,
				SpoolDir: t.TempDir(),
				Clock:    func() time.Time { return time.Unix(p.req.TS, 0) },
				Scan: func(ctx context.Context, meta Meta, body io.ReaderAt, size int64) (*verdict.Verdict, error) {
					gotMeta = meta
					gotBody, _ = io.ReadAll(io.NewSectionReader(body, 0, size))
					var v verdict.Verdict
					err := json.Unmarshal([]byte(p.resp.Body), &v)
					v.JobID = "" // the station sets it from the meta
					return &v, err
				},
				Info: func(context.Context) Info {
					var info Info
					if err := json.Unmarshal([]byte(p.resp.Body), &info); err != nil {
						t.Error(err)
					}
					return info
				},
			}
			ts := httptest.NewServer(srv.Handler())
			defer ts.Close()
			hc := &http.Client{Transport: newTransport(t)}

			status, hdr, body := roundTrip(t, hc, docRequest(t, ts.URL, p.req))
			if status != p.resp.Status || string(body) != p.resp.Body {
				t.Fatalf("station answers %d %q\nthe document says %d %q", status, body, p.resp.Status, p.resp.Body)
			}
			if d := hdr.Get(HeaderContentSHA256); d != p.resp.BodySHA256 {
				t.Errorf("Avs-Content-Sha256 %s, want %s", d, p.resp.BodySHA256)
			}
			c := &Client{Keys: keys}
			resp := &http.Response{StatusCode: status, Header: hdr}
			if err := c.verifyResponse(p.req.Method, p.req.Target, p.req.Nonce, resp, body); err != nil {
				t.Errorf("the client refuses the station's answer: %v", err)
			}
			if p.req.MetaFields != nil && !reflect.DeepEqual(gotMeta, *p.req.MetaFields) {
				t.Errorf("station scanned with meta %+v, want %+v", gotMeta, *p.req.MetaFields)
			}
			if p.req.Method == http.MethodPost && string(gotBody) != p.req.Body {
				t.Errorf("station scanned %q, want %q", gotBody, p.req.Body)
			}

			status, hdr, body = roundTrip(t, hc, docRequest(t, ts.URL, p.req))
			if status != http.StatusUnauthorized || hdr.Get(HeaderSignature) != "" {
				t.Errorf("replayed request: status %d, Avs-Signature %q; want an unsigned 401", status, hdr.Get(HeaderSignature))
			}
			if ex, ok := pv.exchange["replay"]; !ok || !strings.Contains(ex, strings.TrimSuffix(string(body), "\n")) {
				t.Errorf("the document's replay example does not show the station's answer %q", body)
			}
		})
	}
}

func roundTrip(t *testing.T, hc *http.Client, req *http.Request) (int, http.Header, []byte) {
	t.Helper()
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, body
}

// TestProtocolDocClient: the client accepts each documented response to
// the documented request, and refuses it moved to another request, given
// another status or another body.
func TestProtocolDocClient(t *testing.T) {
	pv := readProtocolDoc(t)
	for _, p := range pv.pairs(t) {
		t.Run(p.resp.Vector, func(t *testing.T) {
			keys, err := NewKeyRing(p.resp.key())
			if err != nil {
				t.Fatal(err)
			}
			c := &Client{Keys: keys}
			check := func(status int, requestNonce, body string) error {
				hdr := http.Header{}
				hdr.Set(HeaderContentSHA256, p.resp.BodySHA256)
				hdr.Set(HeaderSignature, p.resp.Signature)
				resp := &http.Response{StatusCode: status, Header: hdr}
				return c.verifyResponse(p.req.Method, p.req.Target, requestNonce, resp, []byte(body))
			}
			if err := check(p.resp.Status, p.resp.RequestNonce, p.resp.Body); err != nil {
				t.Errorf("the client refuses the documented response: %v", err)
			}
			other := strings.Repeat("7", 32)
			if err := check(p.resp.Status, other, p.resp.Body); err == nil {
				t.Error("the response passes for an answer to another request")
			}
			if err := check(http.StatusServiceUnavailable, p.resp.RequestNonce, p.resp.Body); err == nil {
				t.Error("the response passes with another status")
			}
			if err := check(p.resp.Status, p.resp.RequestNonce, p.resp.Body+" "); err == nil {
				t.Error("the response passes with another body")
			}
		})
	}
}

// TestProtocolDocClientSends: what the client sends for the documented
// envelope and body is the documented request but for the nonce, which is
// new each time: putting the sent nonce into the documented canonical
// string gives the signature sent.
func TestProtocolDocClientSends(t *testing.T) {
	pv := readProtocolDoc(t)
	for _, v := range pv.vectors {
		if v.Kind != "request" || v.MetaFields == nil {
			continue
		}
		t.Run(v.Vector, func(t *testing.T) {
			keys, err := NewKeyRing(v.key())
			if err != nil {
				t.Fatal(err)
			}
			var sent *http.Request
			errStop := errors.New("captured")
			c := &Client{
				Stations: []string{"http://127.0.0.1:9"},
				Keys:     keys,
				Clock:    func() time.Time { return time.Unix(v.TS, 0) },
				HTTP: &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
					sent = r
					return nil, errStop
				})},
			}
			body := []byte(v.Body)
			if _, err := c.Scan(context.Background(), *v.MetaFields, bytes.NewReader(body), int64(len(body))); !errors.Is(err, errStop) {
				t.Fatalf("scan: %v", err)
			}
			if sent.Method != v.Method || sent.URL.RequestURI() != v.Target {
				t.Errorf("client sent %s %s", sent.Method, sent.URL.RequestURI())
			}
			if got := sent.Header.Get(HeaderMeta); got != v.Meta {
				t.Errorf("Avs-Meta %s\nwant %s", got, v.Meta)
			}
			if got := sent.Header.Get(HeaderContentSHA256); got != v.BodySHA256 {
				t.Errorf("Avs-Content-Sha256 %s, want %s", got, v.BodySHA256)
			}
			sig, err := ParseAuthorization(sent.Header.Get(HeaderAuthorization))
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(v.Canonical, "\n")
			lines[5] = sig.Nonce // line 6 of the canonical request
			m := hmac.New(sha256.New, []byte(v.Secret))
			m.Write([]byte(strings.Join(lines, "\n")))
			if sig.KeyID != v.KeyID || sig.Timestamp != v.TS || !hmac.Equal(sig.MAC, m.Sum(nil)) {
				t.Errorf("client sent %q, not the documented canonical request signed", sent.Header.Get(HeaderAuthorization))
			}
		})
	}
}

// TestProtocolDocExchange: the example exchange shows the vectors' headers
// and bodies as they go over the wire.
func TestProtocolDocExchange(t *testing.T) {
	pv := readProtocolDoc(t)
	seen := 0
	for _, v := range pv.vectors {
		ex, ok := pv.exchange[v.Vector]
		if !ok {
			continue
		}
		seen++
		t.Run(v.Vector, func(t *testing.T) {
			head, body, ok := strings.Cut(ex, "\n\n")
			if !ok {
				t.Fatal("no blank line between header and body")
			}
			lines := strings.Split(head, "\n")
			want := []string{
				HeaderContentSHA256 + ": " + v.BodySHA256,
				"Content-Length: " + strconv.Itoa(len(v.Body)),
			}
			if v.Kind == "request" {
				if lines[0] != v.Method+" "+v.Target+" HTTP/1.1" {
					t.Errorf("request line %q", lines[0])
				}
				want = append(want, HeaderAuthorization+": "+v.Authorization, HeaderMeta+": "+v.Meta)
				body = strings.ReplaceAll(body, "\n", "\r\n") // shown with LF, sent with CRLF
			} else {
				if !strings.HasPrefix(lines[0], "HTTP/1.1 "+strconv.Itoa(v.Status)+" ") {
					t.Errorf("status line %q", lines[0])
				}
				want = append(want, HeaderSignature+": "+v.Signature)
			}
			for _, w := range want {
				if !slices.Contains(lines, w) {
					t.Errorf("exchange lacks the line %q", w)
				}
			}
			if body != v.Body {
				t.Errorf("exchange body %q, want %q", body, v.Body)
			}
		})
	}
	if seen < 2 {
		t.Errorf("%d vectors shown as an exchange, want a request and its response", seen)
	}
}
