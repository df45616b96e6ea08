// Package localapi serves a running node agent on a local Unix socket (mode
// 0600; on Windows a loopback port behind a token, see internal/localsock), so `palyra node status` and other local tools can read its state,
// and `palyra node capabilities` can change what it shares while it runs,
// without touching the agent's secrets.
package localapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/palyra/palyra-go/internal/localsock"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
)

// Endpoints.
const (
	StatusPath = "/v1/status"
	// SharingPath takes a POSTed node.SharingChange and answers with the
	// capabilities after it.
	SharingPath = "/v1/sharing"
)

// Serve answers status requests on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, a *node.Agent) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Status())
	})
	mux.HandleFunc("POST "+SharingPath, func(w http.ResponseWriter, r *http.Request) {
		var c node.SharingChange
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&c); err != nil {
			http.Error(w, "unreadable change: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := a.ChangeSharing(c); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(a.Capabilities())
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
	var st node.Status
	err := call(ctx, path, http.MethodGet, StatusPath, nil, &st)
	return st, err
}

// ChangeSharing asks the agent behind the socket at path to apply c, and
// returns its capabilities after the change.
func ChangeSharing(ctx context.Context, path string, c node.SharingChange) ([]capability.Info, error) {
	var infos []capability.Info
	err := call(ctx, path, http.MethodPost, SharingPath, c, &infos)
	return infos, err
}

// call sends body (if not nil) as JSON and decodes the answer into out.
func call(ctx context.Context, path, method, endpoint string, body, out any) error {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return localsock.Dial(ctx, path)
		},
	}}
	defer client.CloseIdleConnections()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://node"+endpoint, rd)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if errors.Is(err, localsock.ErrRefused) {
		// An agent answers, but not to this token: saying "not
		// running" would send the user to start a second one.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("the node agent's local API: %w", err)
	}
	if err != nil {
		return fmt.Errorf("%w (no answer on %s)", ErrNotRunning, path)
	}
	defer resp.Body.Close()
	lim := http.MaxBytesReader(nil, resp.Body, 1<<20)
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(lim, 4096))
		return fmt.Errorf("node agent refused: %s", bytes.TrimSpace(msg))
	}
	if err := json.NewDecoder(lim).Decode(out); err != nil {
		return fmt.Errorf("reading the node agent's answer: %w", err)
	}
	return nil
}
