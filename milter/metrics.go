package milter

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/policy"
)

type metrics struct {
	messages     *prometheus.CounterVec
	notListBound prometheus.Counter
	duration     prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avmilter_messages_total",
			Help: "List-bound messages scanned, by outcome (clean, infected, encrypted, limit-exceeded, unscannable, station-failure) and action (accept, reject, tempfail, discard).",
		}, []string{"outcome", "action"}),
		notListBound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "avmilter_not_list_bound_total",
			Help: "Messages accepted at end of envelope because no recipient is a list (not scanned, by configuration).",
		}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "avmilter_scan_duration_seconds",
			Help:    "Time from end of message to decision, including the station round trip.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
	}
	// Pre-set every label pair so that rates exist before the first event.
	for _, o := range policy.Outcomes {
		for _, a := range []policy.Verb{policy.Accept, policy.RejectMsg, policy.TempfailMsg, policy.DiscardMsg} {
			m.messages.WithLabelValues(string(o), string(a))
		}
	}
	reg.MustRegister(m.messages, m.notListBound, m.duration)
	return m
}

func (m *metrics) observe(d policy.Decision, took time.Duration) {
	m.messages.WithLabelValues(string(d.Outcome), string(d.Verb)).Inc()
	m.duration.Observe(took.Seconds())
}
