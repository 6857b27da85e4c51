package milter

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/verdict"
)

// TestPoolProbePanic: a panic while probing a station (here in the HTTP
// transport that reads its answer) is logged once with its stack and marks
// that station down; the next probe that passes brings it back.
func TestPoolProbePanic(t *testing.T) {
	keys := testKeys(t, "default", "pool-secret")
	a := newFakeStation(t, keys, 1<<20)
	broken := true
	hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		if broken {
			panic("transport bug")
		}
		return http.DefaultTransport.RoundTrip(r)
	})}
	logs := &logBuffer{}
	p := NewPool(&jobproto.Client{Stations: []string{a.srv.URL}, Keys: keys, HTTP: hc}, testProbe, slog.New(slog.NewTextHandler(logs, nil)), prometheus.NewRegistry())
	mb := p.members[0]
	p.probeGuarded(context.Background(), mb, time.Second)
	if got := value(p.m.up.WithLabelValues(mb.label)); got != 0 {
		t.Errorf("station up = %v after a panicking probe, want 0", got)
	}
	if n := strings.Count(logs.String(), `msg="panic recovered" where="station probe"`); n != 1 {
		t.Errorf("%d panic lines:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), `panic="transport bug"`) || !strings.Contains(logs.String(), "TestPoolProbePanic") {
		t.Errorf("the panic line lacks the panic or its stack:\n%s", logs)
	}
	broken = false
	p.probeGuarded(context.Background(), mb, time.Second)
	if got := value(p.m.up.WithLabelValues(mb.label)); got != 1 {
		t.Errorf("station up = %v after a good probe, want 1", got)
	}
	if v, err := scanMsg(t, p, time.Second, 10); err != nil || v.Status != verdict.Clean {
		t.Errorf("a job after the probes: %+v, %v", v, err)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
