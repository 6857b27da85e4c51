package station

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/avstation/avstation/internal/panics"
	"github.com/avstation/avstation/jobproto"
	"github.com/avstation/avstation/scanner"
)

// Listener caps ln at max_connections (see limitListener); plain is false
// for TLS. Call it once, before serving.
func (s *Station) Listener(ln net.Listener, plain bool) net.Listener {
	l := limitListen(ln, s.cfg.MaxConnections, plain, s.metrics.connRefused.Inc)
	l.onTooLarge = s.headerTooLarge
	l.onPanic = func(pe *panics.Error) { s.panicked("listener", "", pe.Value, pe.Stack) }
	s.conns.Store(l)
	return l
}

// headerTooLarge counts and logs a request net/http answered 431: its
// header was over max_request_header_bytes, so nothing of it was
// authenticated and none of its body read.
func (s *Station) headerTooLarge(peer net.Addr) {
	s.metrics.headerTooLarge.Inc()
	s.log.Warn("request header too large", slog.String("peer", peer.String()),
		slog.Int64("max_request_header_bytes", int64(s.cfg.MaxRequestHeader)))
}

// guard is what every request passes first: a short deadline until the
// job protocol has authenticated it, and a recover for its handler.
func (s *Station) guard(next http.Handler) http.Handler {
	short := s.cfg.ReadHeaderTimeout
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Until a signature verifies (jobproto then gives body_timeout),
		// a request gets no more time for its body or for taking its
		// answer than for its header: an unauthenticated client cannot
		// hold a connection and a goroutine longer than that.
		rc := http.NewResponseController(w)
		_ = rc.SetReadDeadline(time.Now().Add(short))
		_ = rc.SetWriteDeadline(time.Now().Add(short))
		gw := &guardedWriter{ResponseWriter: w}
		defer func() {
			p := recover()
			if p == nil {
				return
			}
			if p == http.ErrAbortHandler {
				panic(p)
			}
			s.panicked("handler", jobproto.LogJobID(r.Header), p, debug.Stack())
			if gw.wrote {
				// Half an answer cannot be taken back: cut the
				// connection, and the milter sees a failed station.
				panic(http.ErrAbortHandler)
			}
			// Unsigned, so the milter cannot act on it: it takes a
			// failed station's path and tempfails.
			w.Header().Set("Connection", "close")
			http.Error(w, "station error", http.StatusInternalServerError)
		}()
		next.ServeHTTP(gw, r)
	})
}

// panicked logs a recovered panic, one line with its stack, and counts it.
func (s *Station) panicked(where, jobID string, p any, stack []byte) {
	s.metrics.panics.WithLabelValues(where).Inc()
	s.log.Error("panic recovered", slog.String("where", where), slog.String("job_id", jobID),
		slog.String("panic", fmt.Sprint(p)), slog.String("stack", string(stack)))
}

// scanPanic reports err's panic, when it is one; true if it was.
func (s *Station) scanPanic(jobID string, err error) bool {
	pe, ok := errors.AsType[*scanner.PanicError](err)
	if ok {
		s.panicked("scan", jobID, pe.Value, pe.Stack)
	}
	return ok
}

// guardedWriter notes whether anything of the answer went out. Unwrap
// keeps http.ResponseController reaching the connection.
type guardedWriter struct {
	http.ResponseWriter
	wrote bool
}

func (g *guardedWriter) WriteHeader(code int) { g.wrote = true; g.ResponseWriter.WriteHeader(code) }
func (g *guardedWriter) Write(b []byte) (int, error) {
	g.wrote = true
	return g.ResponseWriter.Write(b)
}
func (g *guardedWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// panicWheres are the values of avstation_panics_total's where label.
var panicWheres = []string{"scan", "handler", "listener"}
