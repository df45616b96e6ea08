// Package localapi serves a running node agent's status on a local Unix
// socket (mode 0600), so `palyra node status` and other local tools can read
// it without touching the agent's secrets. It is read-only.
package localapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/palyra/palyra-go/node"
)

// StatusPath is the one endpoint.
const StatusPath = "/v1/status"

// Serve answers status requests on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, a *node.Agent) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(shutdownCtx)
	<-done
	return nil
}

// ErrNotRunning means no agent answers on the socket.
var ErrNotRunning = errors.New("the node agent is not running")

// Status asks the agent behind the socket at path.
func Status(ctx context.Context, path string) (node.Status, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
	defer client.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://node"+StatusPath, nil)
	if err != nil {
		return node.Status{}, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return node.Status{}, fmt.Errorf("%w (no answer on %s)", ErrNotRunning, path)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return node.Status{}, fmt.Errorf("node agent answered %s", resp.Status)
	}
	var st node.Status
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 1<<20)).Decode(&st); err != nil {
		return node.Status{}, fmt.Errorf("reading node status: %w", err)
	}
	return st, nil
}
