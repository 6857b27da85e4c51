package milter

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// WatchStations asks each station's /healthz every interval and reports
// avmilter_station_up{station} (1 answering, 0 not), for the alert on a
// station that is down before mail piles up in tempfails. It returns when
// ctx ends.
func WatchStations(ctx context.Context, hc *http.Client, stations []string, reg prometheus.Registerer, interval time.Duration) {
	up := prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "avmilter_station_up",
		Help: "1 when the station answers GET /healthz, 0 when it does not; one series per configured station.",
	}, []string{"station"})
	reg.MustRegister(up)
	labels := make([]string, len(stations))
	for i, st := range stations {
		labels[i] = redact(st)
		up.WithLabelValues(labels[i])
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		for i, st := range stations {
			v := 0.0
			if healthy(ctx, hc, st) {
				v = 1
			}
			up.WithLabelValues(labels[i]).Set(v)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func healthy(ctx context.Context, hc *http.Client, station string) bool {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, station+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// redact drops any user:password from a station URL before it is a label.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "invalid"
	}
	u.User = nil
	return u.String()
}
