package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// ContentType is the media type of the text exposition format 0.0.4.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Limits of the metrics HTTP server. A scrape is one small GET.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 2 * time.Minute
	// shutdownTimeout bounds waiting for scrapes in flight when ctx ends.
	shutdownTimeout = 5 * time.Second
)

// Handler serves the registry's metrics to GET (and HEAD) requests, and
// answers other methods with 405.
func (r *Registry) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "metrics: only GET is allowed", http.StatusMethodNotAllowed)
			return
		}
		var buf bytes.Buffer
		if _, err := r.WriteTo(&buf); err != nil {
			http.Error(w, "metrics: "+err.Error(), http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ContentType)
		h.Set("Content-Length", strconv.Itoa(buf.Len()))
		h.Set("Cache-Control", "no-store")
		if req.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(buf.Bytes())
	})
}

// Serve listens on addr and serves r at /metrics until ctx ends. The
// endpoint has no authentication, so addr must be a loopback address
// (127.0.0.0/8, [::1] or localhost); any other, including an empty host or
// 0.0.0.0, which mean every interface, is refused with an error saying so.
//
// It returns the address it listens on (useful with port 0) and a channel
// that yields why serving stopped — nil once ctx ended and scrapes in flight
// finished (or were cut off after a few seconds) — and is then closed. log
// may be nil.
func Serve(ctx context.Context, addr string, r *Registry, log *slog.Logger) (net.Addr, <-chan error, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := CheckLoopback(addr); err != nil {
		return nil, nil, err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("metrics endpoint: %w", err)
	}
	// "localhost" could resolve to anything; check what was bound.
	if ap, err := netip.ParseAddrPort(ln.Addr().String()); err != nil || !ap.Addr().IsLoopback() {
		ln.Close()
		return nil, nil, fmt.Errorf("metrics endpoint: %s resolved to %s, which is not a loopback address; %s", addr, ln.Addr(), loopbackOnly)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", r.Handler())
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	go func() {
		defer close(errc)
		select {
		case <-ctx.Done():
			shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			if err := srv.Shutdown(shutdownCtx); err != nil {
				_ = srv.Close()
			}
			cancel()
			<-serveErr // http.ErrServerClosed
			errc <- nil
		case err := <-serveErr:
			_ = srv.Close()
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			if err != nil {
				err = fmt.Errorf("metrics endpoint: %w", err)
				log.Error("metrics endpoint stopped", "err", err)
			}
			errc <- err
		}
	}()
	log.Info("serving metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	return ln.Addr(), errc, nil
}

const loopbackOnly = "the metrics endpoint has no authentication, so it listens only on loopback (e.g. 127.0.0.1:9464 or [::1]:9464); to scrape from another machine, put an authenticating proxy in front of it"

// CheckLoopback refuses addresses that are not loopback, with the reason:
// Serve checks it, and the gateway before it writes anything.
func CheckLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("metrics endpoint: address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	ip, err := netip.ParseAddr(host)
	switch {
	case host == "":
		return fmt.Errorf("refusing to serve metrics on %q: an empty host means every interface; %s", addr, loopbackOnly)
	case err != nil:
		return fmt.Errorf("refusing to serve metrics on %q: give a loopback IP address or localhost, not a host name; %s", addr, loopbackOnly)
	case ip.IsUnspecified():
		return fmt.Errorf("refusing to serve metrics on %q: %s means every interface; %s", addr, host, loopbackOnly)
	case !ip.IsLoopback():
		return fmt.Errorf("refusing to serve metrics on %q: %s is not a loopback address; %s", addr, host, loopbackOnly)
	}
	return nil
}
