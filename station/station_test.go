package station

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/config"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
	"github.com/avstation/avstation/scanner/clamd"
	"github.com/avstation/avstation/scanner/engineerr"
	"github.com/avstation/avstation/verdict"
)

// evilEngine finds "EVIL" and names it.
type evilEngine struct{}

func (evilEngine) Name() string { return "evil" }
func (evilEngine) Scan(ctx context.Context, r io.Reader) (scanner.Detection, error) {
	b, err := io.ReadAll(r)
	return scanner.Detection{Found: bytes.Contains(b, []byte("EVIL")), Threat: "Test.Evil"}, err
}
func (evilEngine) Version(context.Context) (verdict.Engine, error) {
	return verdict.Engine{Name: "evil", Version: "1", SignatureVersion: "7"}, nil
}

func newStation(t *testing.T) (*httptest.Server, *bytes.Buffer, *jobproto.KeyRing) {
	t.Helper()
	cfg := config.DefaultStation()
	cfg.SpoolDir = t.TempDir()
	keys, err := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("station-test-secret")})
	if err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	sc := scanner.New(scanner.Options{Name: "avstation test on here"}, evilEngine{})
	st := New(&cfg, sc, nil, keys, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	srv := httptest.NewServer(st.Handler())
	t.Cleanup(srv.Close)
	return srv, logs, keys
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func TestStationScansSignedJobs(t *testing.T) {
	srv, logs, keys := newStation(t)
	c := &jobproto.Client{Stations: []string{srv.URL}, Keys: keys}
	msg := "Subject: t\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=x.exe\r\n\r\nEVIL\r\n--b--\r\n"
	v, err := c.Scan(context.Background(), jobproto.Meta{JobID: "job1", QueueID: "Q1", Lists: []string{"dev"}}, strings.NewReader(msg), int64(len(msg)))
	if err != nil {
		t.Fatal(err)
	}
	f, _ := v.First(verdict.Infected)
	if v.Status != verdict.Infected || v.JobID != "job1" || f.FileName != "x.exe" || v.Scanner != "avstation test on here" {
		t.Errorf("verdict %+v", v)
	}
	if !strings.Contains(logs.String(), `msg="job scanned" job_id=job1 queue_id=Q1`) || !strings.Contains(logs.String(), `1 \"x.exe\" virus Test.Evil (evil)`) {
		t.Errorf("log:\n%s", logs)
	}
	m := get(t, srv.URL+"/metrics")
	if !strings.Contains(m, `avstation_jobs_total{status="infected"} 1`) || !strings.Contains(m, `avstation_jobs_total{status="clean"} 0`) {
		t.Errorf("metrics:\n%s", m)
	}
	info, err := c.Info(context.Background(), srv.URL)
	if err != nil || len(info.Engines) != 1 || info.Engines[0].SignatureVersion != "7" {
		t.Errorf("info %+v, %v", info, err)
	}
}

func TestStationRefusesWrongSecret(t *testing.T) {
	srv, logs, _ := newStation(t)
	wrong, _ := jobproto.NewKeyRing(jobproto.Key{ID: "default", Secret: []byte("guess")})
	c := &jobproto.Client{Stations: []string{srv.URL}, Keys: wrong}
	if _, err := c.Scan(context.Background(), jobproto.Meta{JobID: "job2"}, strings.NewReader("EVIL"), 4); err == nil {
		t.Fatal("scan with a wrong secret succeeded")
	}
	if strings.Contains(logs.String(), "job scanned") || !strings.Contains(logs.String(), "invalid job signature") {
		t.Errorf("log:\n%s", logs)
	}
	if m := get(t, srv.URL+"/metrics"); !strings.Contains(m, `avstation_invalid_signatures_total{reason="bad signature"} 1`) {
		t.Errorf("metrics:\n%s", m)
	}
	if h := get(t, srv.URL+"/healthz"); !strings.Contains(h, `"ready":true`) {
		t.Errorf("healthz %q", h)
	}
}

func TestEngineErrorReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("clamd x: INSTREAM: %w", engineerr.Mark(errors.New("connection refused"), engineerr.ErrUnreachable)), "unreachable"},
		{fmt.Errorf("%w (…)", clamd.ErrNoClamd), "unreachable"},
		{engineerr.Mark(context.DeadlineExceeded, engineerr.ErrTimeout), "timeout"},
		{&clamd.ReplyError{Reply: "PROTOCOL ERROR: ancillary data sent without FILDES. ERROR"}, "protocol"},
		{&clamd.ReplyError{Reply: "stream: Can't allocate memory ERROR"}, "error"},
		// The text does not count, only the kind.
		{errors.New("external fake: no answer within 300ms (timeout): connection refused"), "error"},
		{nil, "error"},
	} {
		if got := engineErrorReason(tt.err); got != tt.want {
			t.Errorf("%v: %s, want %s", tt.err, got, tt.want)
		}
	}
}
