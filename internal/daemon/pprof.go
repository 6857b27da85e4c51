package daemon

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"
)

// PprofHandler serves Go's profiler under /debug/pprof/ on its own mux, so
// that nothing reaches it through the job protocol's or the metrics' server.
func PprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// ServePprof serves PprofHandler on addr (pprof_listen, checked loopback by
// config) until ctx is done; "" serves nothing. A failure is logged, never
// fatal: the profiler is a measuring aid, not part of the service.
func ServePprof(ctx context.Context, log *slog.Logger, addr string) {
	if addr == "" {
		return
	}
	// WriteTimeout stays unset: a CPU profile answers after its seconds.
	hs := &http.Server{Addr: addr, Handler: PprofHandler(), ReadHeaderTimeout: 10 * time.Second}
	log.Info("profiler listening", slog.String("pprof_listen", addr))
	go func() {
		if err := Serve(ctx, log, hs, hs.ListenAndServe); err != nil {
			log.Error("profiler server", slog.String("pprof_listen", addr), slog.Any("err", err))
		}
	}()
}
