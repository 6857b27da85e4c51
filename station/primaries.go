package station

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// maxPrimaryLabels bounds the primary label: the names are the milters'
// (signed, but chosen by whoever holds a key). Past this many pairs, the
// rest count as primary="other".
const maxPrimaryLabels = 100

// primaryMetrics counts jobs by which primary sent them with which key.
type primaryMetrics struct {
	jobs *prometheus.CounterVec
	mu   sync.Mutex
	seen map[[2]string]bool
}

func newPrimaryMetrics(reg prometheus.Registerer) *primaryMetrics {
	m := &primaryMetrics{
		jobs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "avstation_primary_jobs_total",
			Help: "Scan jobs finished, by the primary that sent them (its primary_id) and the key id it signed with; past 100 pairs the rest count as primary=\"other\".",
		}, []string{"primary", "key_id"}),
		seen: map[[2]string]bool{},
	}
	reg.MustRegister(m.jobs)
	return m
}

// primary counts one job of primary signed with keyID.
func (m *metrics) primary(primary, keyID string) {
	p := m.primaries
	if primary == "" {
		primary = "unnamed"
	}
	pair := [2]string{primary, keyID}
	p.mu.Lock()
	if !p.seen[pair] {
		if len(p.seen) >= maxPrimaryLabels {
			pair[0] = "other"
		} else {
			p.seen[pair] = true
		}
	}
	p.mu.Unlock()
	p.jobs.WithLabelValues(pair[0], pair[1]).Inc()
}
