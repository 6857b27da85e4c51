package milter

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/avstation/avstation/policy"
)

// maxListLabels bounds the list label: lists under *@domain are named by
// recipients, so their number is the senders' choice. Past this many, the
// rest count as "other".
const maxListLabels = 200

type metrics struct {
	messages     *prometheus.CounterVec
	lists        *prometheus.CounterVec
	listNames    sync.Map // list name → struct{}
	listCount    atomic.Int64
	notListBound prometheus.Counter
	bypassed     *prometheus.CounterVec
	duration     prometheus.Histogram
	// panics counts recovered panics by where: a milter callback, or the
	// scan and decision of one message.
	panics          *prometheus.CounterVec
	sessionsRefused prometheus.Counter
	notHeld         prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avmilter_messages_total",
			Help: "List-bound messages decided, by outcome (clean, infected, encrypted, banned-name, limit-exceeded, unscannable, oversize, station-failure) and what the MTA was told (accept, reject, tempfail, discard).",
		}, []string{"outcome", "action"}),
		lists: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avmilter_list_messages_total",
			Help: "List-bound messages by list and outcome (the outcomes of avmilter_messages_total); lists past the first 200 seen count as list=\"other\".",
		}, []string{"list", "outcome"}),
		notListBound: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "avmilter_not_list_bound_total",
			Help: "Messages accepted at end of envelope because no recipient is a list (not scanned, by configuration).",
		}),
		bypassed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avmilter_bypassed_total",
			Help: "List-bound messages not scanned by configuration, by reason (bypass-file, outgoing, notice, release).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "avmilter_scan_duration_seconds",
			Help:    "Time from end of message to decision, including the station round trip.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120},
		}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avmilter_panics_total",
			Help: "Panics recovered, by where (callback, decision); each message hit was tempfailed and the daemon went on.",
		}, []string{"where"}),
		sessionsRefused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "avmilter_sessions_refused_total",
			Help: "MTA connections over max_sessions, whose messages were tempfailed at connect.",
		}),
		notHeld: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "avmilter_messages_not_held_total",
			Help: "List-bound messages tempfailed while their body arrived: over spool_max_message or spool_max_total, or the spool disk failed.",
		}),
	}
	for _, w := range []string{"callback", "decision"} {
		m.panics.WithLabelValues(w)
	}
	// Pre-set every label pair so that rates exist before the first event.
	for _, o := range policy.Outcomes {
		for _, a := range policy.Verbs {
			m.messages.WithLabelValues(string(o), string(a))
		}
	}
	for _, r := range []string{"bypass-file", "outgoing", "notice", "release"} {
		m.bypassed.WithLabelValues(r)
	}
	reg.MustRegister(m.messages, m.lists, m.notListBound, m.bypassed, m.duration, m.panics, m.sessionsRefused, m.notHeld)
	return m
}

func (m *metrics) observe(lists []string, o policy.Outcome, v policy.Verb, took time.Duration) {
	m.messages.WithLabelValues(string(o), string(v)).Inc()
	for _, l := range lists {
		m.lists.WithLabelValues(m.listLabel(l), string(o)).Inc()
	}
	m.duration.Observe(took.Seconds())
}

// listLabel is the list's name, or "other" once maxListLabels lists have
// been seen; a new list's label pairs are pre-set to 0.
func (m *metrics) listLabel(list string) string {
	if _, ok := m.listNames.Load(list); ok {
		return list
	}
	if m.listCount.Add(1) > maxListLabels {
		return "other"
	}
	if _, loaded := m.listNames.LoadOrStore(list, struct{}{}); !loaded {
		for _, o := range policy.Outcomes {
			m.lists.WithLabelValues(list, string(o))
		}
	}
	return list
}
