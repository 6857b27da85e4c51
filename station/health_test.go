package station

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/verdict"
)

// switchEngine is an engine whose VERSION fails while down is set, with an
// address in its error that /readyz must not show.
type switchEngine struct {
	name string
	down *atomic.Bool
}

func (e switchEngine) Name() string { return e.name }
func (e switchEngine) Scan(context.Context, io.Reader) (scanner.Detection, error) {
	return scanner.Detection{}, nil
}
func (e switchEngine) Version(context.Context) (verdict.Engine, error) {
	if e.down.Load() {
		return verdict.Engine{}, engineerr.Mark(errors.New("dial tcp 10.9.8.7:3310: connection refused"), engineerr.ErrUnreachable)
	}
	return verdict.Engine{Name: e.name, Version: "ClamAV 1.4", SignatureVersion: "27500"}, nil
}

func TestHealthEndpoints(t *testing.T) {
	var aDown, bDown atomic.Bool
	cfg := config.DefaultStation()
	cfg.SpoolDir = t.TempDir()
	keys, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("s")})
	sc := scanner.New(scanner.Options{Name: "t"}, switchEngine{"clamd", &aDown}, switchEngine{"other", &bDown})
	st := New(&cfg, sc, nil, keys, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	srv := httptest.NewServer(st.Handler())
	defer srv.Close()
	for _, tt := range []struct {
		name         string
		aDown, bDown bool
		want         int
		body         []string
	}{
		{"both up", false, false, 200, []string{`"ready":true`, `"name":"clamd","state":"ok"`, `"signature_version":"27500"`}},
		{"one down", true, false, 200, []string{`"ready":true`, `"name":"clamd","state":"down","reason":"unreachable"`}},
		{"all down", true, true, 503, []string{`"ready":false`, `"name":"other","state":"down"`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			aDown.Store(tt.aDown)
			bDown.Store(tt.bDown)
			time.Sleep(readyTTL + 50*time.Millisecond) // past the cached answer
			for _, path := range []string{"/readyz", "/healthz"} {
				code, body := fetch(t, srv.URL+path)
				if code != tt.want {
					t.Errorf("%s: %d, want %d: %s", path, code, tt.want, body)
				}
				for _, s := range tt.body {
					if !strings.Contains(body, s) {
						t.Errorf("%s body %s lacks %s", path, body, s)
					}
				}
				if strings.Contains(body, "10.9.8.7") || strings.Contains(body, "refused") {
					t.Errorf("%s shows an engine's error detail: %s", path, body)
				}
			}
			if code, body := fetch(t, srv.URL+"/livez"); code != 200 || body != "ok\n" {
				t.Errorf("/livez: %d %q", code, body)
			}
		})
	}
}

func TestInfoPublishesLimits(t *testing.T) {
	srv, _, keys := newStation(t)
	c := &jobproto.Client{Keys: keys}
	info, err := c.Info(context.Background(), srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(config.DefaultStation().MaxMessage); info.MaxMessageSize != want || len(info.Engines) != 1 {
		t.Errorf("info %+v, want max_message_size %d and the engine", info, want)
	}
}

func fetch(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, fmt.Sprint(string(b))
}
