package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/palyra/palyra-go/internal/atomicfile"
)

// Files in the node's config directory. The agent reads and writes them;
// tools that inspect a node (palyra doctor) read them through ReadConfig
// and ReadSharing, so the files have one owner.
const (
	// ConfigFile holds the gateways' addresses (StoredConfig).
	ConfigFile = "node.json"
	// SharingFile keeps what the owner shares (Sharing). It outlives
	// Forget: the choices are about this machine, not about a gateway.
	SharingFile = "sharing.json"
	// PendingFile keeps a pairing request that waits for approval
	// (StoredPending), so it survives the pairing command ending; the
	// request's secret key is in the secret store.
	PendingFile = "pending.json"
	// LockFile is locked by the running agent and names its PID.
	LockFile = "node.lock"
)

// StoredConfig is what ConfigFile holds: written when pairing completes
// and when a Welcome names other gateway addresses (learnAddresses),
// removed by Forget.
type StoredConfig struct {
	DeviceName  string   `json:"device_name"`
	GatewayName string   `json:"gateway_name"`
	Gateways    []string `json:"gateways"`
	// RevokedAt is when the node learnt that the gateway revoked it; it
	// stays until the owner forgets the gateway or pairs again.
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// StoredPending is what PendingFile holds: nothing secret.
type StoredPending struct {
	RequestID        string    `json:"request_id"`
	VerificationCode string    `json:"verification_code"`
	ExpiresAt        time.Time `json:"expires_at"`
	// Address is the gateway that holds the request.
	Address string `json:"address"`
	// ServerChain is the gateway's TLS chain (DER) the request is bound to.
	ServerChain [][]byte `json:"server_chain"`
	// CAPin is the CA a pairing link pinned, if it was paired by link.
	CAPin []byte `json:"ca_pin,omitempty"`
}

// ParseError is a node file that exists and was read but does not parse;
// the agent refuses to start until it is fixed or removed.
type ParseError struct {
	// Path is the file's path.
	Path string
	// Err is the decoder's error.
	Err error
}

func (e *ParseError) Error() string { return e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }

// ReadConfig reads ConfigFile in dir. A missing file is an error that
// matches os.ErrNotExist (the node is not paired); one that does not parse
// wraps a *ParseError.
func ReadConfig(dir string) (StoredConfig, error) {
	var c StoredConfig
	if err := readJSON(dir, ConfigFile, &c, "reading node configuration"); err != nil {
		return StoredConfig{}, err
	}
	return c, nil
}

// ReadSharing reads SharingFile in dir. A missing file is an error that
// matches os.ErrNotExist (every capability has its default setting); one
// that does not parse wraps a *ParseError.
func ReadSharing(dir string) (Sharing, error) {
	var s Sharing
	if err := readJSON(dir, SharingFile, &s, "reading sharing settings"); err != nil {
		return Sharing{}, err
	}
	return s, nil
}

// readJSON decodes the file name in dir into v; doing prefixes its errors.
func readJSON(dir, name string, v any, doing string) error {
	path := filepath.Join(dir, name)
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: %w", doing, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("%s %s: %w", doing, name, &ParseError{Path: path, Err: err})
	}
	return nil
}

// ReadPending reads PendingFile in dir. A missing file is an error that
// matches os.ErrNotExist (no request waits); one that does not parse, or
// lacks what resuming needs, wraps a *ParseError.
func ReadPending(dir string) (StoredPending, error) {
	var p StoredPending
	if err := readJSON(dir, PendingFile, &p, "reading the pending pairing request"); err != nil {
		return StoredPending{}, err
	}
	if p.RequestID == "" || p.Address == "" || len(p.ServerChain) == 0 {
		return StoredPending{}, fmt.Errorf("reading the pending pairing request %s: %w", PendingFile,
			&ParseError{Path: filepath.Join(dir, PendingFile), Err: fmt.Errorf("it lacks the request ID, the gateway address or its certificate")})
	}
	return p, nil
}

// writeJSON writes v atomically, indented and ending in a newline, to the
// file name in the config directory.
func (a *Agent) writeJSON(name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(a.cfg.ConfigDir, 0o700); err != nil {
		return fmt.Errorf("creating the config directory: %w", err)
	}
	return atomicfile.Write(filepath.Join(a.cfg.ConfigDir, name), append(b, '\n'), 0o600)
}
