package station

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/avstation/avstation/scanner"
)

// readyTTL is how long one engine check answers /readyz: probes from many
// milters and Kubernetes must not each cost an engine call.
const readyTTL = time.Second

// Readiness is the body of /readyz and /healthz.
type Readiness struct {
	Ready   bool                  `json:"ready"`
	Engines []scanner.EngineState `json:"engines"`
}

// health answers /livez (the process runs) and /readyz (an engine answers
// with its signatures loaded; 503 otherwise).
type health struct {
	check func(context.Context) []scanner.EngineState

	mu   sync.Mutex
	last Readiness
	at   time.Time
}

func (h *health) livez(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write([]byte("ok\n"))
}

func (h *health) readyz(w http.ResponseWriter, r *http.Request) {
	rd := h.readiness(r.Context())
	status := http.StatusOK
	if !rd.Ready {
		status = http.StatusServiceUnavailable
	}
	body, _ := json.Marshal(rd)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}

// readiness is the last check when it is fresh, else a new one. Checks
// run one at a time.
func (h *health) readiness(ctx context.Context) Readiness {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.at.IsZero() && time.Since(h.at) < readyTTL {
		return h.last
	}
	states := h.check(ctx)
	rd := Readiness{Engines: states}
	for _, s := range states {
		rd.Ready = rd.Ready || s.State == "ok"
	}
	h.last, h.at = rd, time.Now()
	return rd
}

// handle adds the health endpoints to mux; /healthz is /readyz under its
// old name.
func (h *health) handle(mux *http.ServeMux) {
	mux.HandleFunc("GET /livez", h.livez)
	mux.HandleFunc("GET /readyz", h.readyz)
	mux.HandleFunc("GET /healthz", h.readyz)
}
