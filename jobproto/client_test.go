package jobproto

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/avstation/avstation/verdict"
)

// TestResponseTampering: a response that was changed, moved or not signed
// is never taken for a verdict.
func TestResponseTampering(t *testing.T) {
	type recorded struct {
		hdr    http.Header
		status int
		body   []byte
	}
	tests := []struct {
		name    string
		scanErr bool
		tamper  func(resp *http.Response, body []byte, first *recorded) (int, http.Header, []byte)
		wantErr string
	}{
		{
			name: "body changed, digest kept",
			tamper: func(resp *http.Response, body []byte, _ *recorded) (int, http.Header, []byte) {
				return resp.StatusCode, resp.Header, bytes.Replace(body, []byte(`"clean"`), []byte(`"error"`), 1)
			},
			wantErr: "does not match its signed digest",
		},
		{
			name: "body and digest changed",
			tamper: func(resp *http.Response, body []byte, _ *recorded) (int, http.Header, []byte) {
				b := bytes.Replace(body, []byte(`"clean"`), []byte(`"error"`), 1)
				resp.Header.Set(HeaderContentSHA256, digestHex(b))
				return resp.StatusCode, resp.Header, b
			},
			wantErr: "does not verify",
		},
		{
			name:    "status changed",
			scanErr: true,
			tamper: func(resp *http.Response, body []byte, _ *recorded) (int, http.Header, []byte) {
				return http.StatusOK, resp.Header, body
			},
			wantErr: "does not verify",
		},
		{
			name: "unsigned",
			tamper: func(resp *http.Response, body []byte, _ *recorded) (int, http.Header, []byte) {
				resp.Header.Del(HeaderSignature)
				return resp.StatusCode, resp.Header, body
			},
			wantErr: "unsigned response",
		},
		{
			name: "signature garbled",
			tamper: func(resp *http.Response, body []byte, _ *recorded) (int, http.Header, []byte) {
				resp.Header.Set(HeaderSignature, "key=a, ts=1, nonce=zz")
				return resp.StatusCode, resp.Header, body
			},
			wantErr: "bad response signature",
		},
		{
			name: "response of another request",
			tamper: func(resp *http.Response, body []byte, first *recorded) (int, http.Header, []byte) {
				return first.status, first.hdr, first.body
			},
			wantErr: "does not verify",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := newStation(t, "A", func(s *Server) {
				if tt.scanErr {
					s.Scan = func(context.Context, Meta, io.ReaderAt, int64) (*verdict.Verdict, error) {
						return nil, errors.New("clamd down")
					}
				}
			})
			c := newClient(t, ring(t, keyA), st.srv.URL)
			// A first, untouched job gives the response to replay.
			first := &recorded{}
			tr := newTransport(t)
			var calls atomic.Int32
			c.HTTP.Transport = roundTripFunc(func(r *http.Request) (*http.Response, error) {
				resp, err := tr.RoundTrip(r)
				if err != nil {
					return nil, err
				}
				body, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					return nil, err
				}
				if calls.Add(1) == 1 {
					*first = recorded{resp.Header.Clone(), resp.StatusCode, body}
				} else {
					resp.StatusCode, resp.Header, body = tt.tamper(resp, body, first)
				}
				resp.Body = io.NopCloser(bytes.NewReader(body))
				resp.ContentLength = int64(len(body))
				return resp, nil
			})
			scan(c) // the first job, untouched
			v, err := scan(c)
			if err == nil || v != nil {
				t.Fatalf("got %+v, %v; want error", v, err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestScanErrorIsSignedAndFailsOver(t *testing.T) {
	failing := newStation(t, "A", func(s *Server) {
		s.Scan = func(context.Context, Meta, io.ReaderAt, int64) (*verdict.Verdict, error) {
			return nil, errors.New("clamd down")
		}
	})
	c := newClient(t, ring(t, keyA), failing.srv.URL)
	_, err := scan(c)
	se, ok := errors.AsType[*StationError](err)
	if !ok || se.Status != http.StatusInternalServerError || !strings.Contains(err.Error(), "scan failed: clamd down") {
		t.Fatalf("error %v", err)
	}

	good := newStation(t, "B", nil)
	c.Stations = append(c.Stations, good.srv.URL)
	v, err := scan(c)
	if err != nil || v.Scanner != "B" {
		t.Fatalf("got %+v, %v; want B's verdict", v, err)
	}
}

func TestAllStationsFail(t *testing.T) {
	a := newStation(t, "A", nil)
	b := newStation(t, "B", nil)
	c := newClient(t, ring(t, Key{ID: "a", Secret: []byte("s3cret-wrong")}), a.srv.URL, b.srv.URL)
	_, err := scan(c)
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, want := range []string{"all 2 stations failed", a.srv.URL, b.srv.URL, "check secret_file"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if se, ok := errors.AsType[*StationError](err); !ok || !se.Auth || !errors.Is(err, ErrAuth) {
		t.Errorf("error %#v is not an auth StationError", err)
	}
}

func TestFirstStationDown(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := "http://" + l.Addr().String()
	l.Close()
	up := newStation(t, "B", nil)
	c := newClient(t, ring(t, keyA), down, up.srv.URL)
	v, err := scan(c)
	if err != nil || v.Scanner != "B" {
		t.Fatalf("got %+v, %v", v, err)
	}

	c.Stations = []string{down}
	_, err = scan(c)
	se, ok := errors.AsType[*StationError](err)
	if !ok || se.Status != 0 || se.Station != down {
		t.Fatalf("error %#v", err)
	}
}

func TestShortReaderAt(t *testing.T) {
	c := newClient(t, ring(t, keyA), "http://127.0.0.1:1")
	_, err := c.Scan(context.Background(), Meta{JobID: "j"}, bytes.NewReader(message), int64(len(message))+5)
	if err == nil || !strings.Contains(err.Error(), "reading message") {
		t.Fatalf("error %v", err)
	}
}

func TestRedactedStationURL(t *testing.T) {
	e := &StationError{Station: "https://u:pw-s3cret@st.example/", JobID: "j", Err: errors.New("x")}
	if strings.Contains(e.Error(), "pw-s3cret") {
		t.Errorf("error %q shows the password", e)
	}
}
