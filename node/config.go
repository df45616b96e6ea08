package node

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// Files in the node's config directory. The agent reads and writes them;
// tools that inspect a node (palyra doctor) read them through ReadConfig
// and ReadSharing, so the files have one owner.
const (
	// ConfigFile holds the pairing's addresses (StoredConfig).
	ConfigFile = "node.json"
	// SharingFile keeps what the owner shares (Sharing). It outlives
	// Forget: the choices are about this machine, not about a gateway.
	SharingFile = "sharing.json"
)

// StoredConfig is what ConfigFile holds: written when pairing completes,
// removed by Forget.
type StoredConfig struct {
	DeviceName  string   `json:"device_name"`
	GatewayName string   `json:"gateway_name"`
	Gateways    []string `json:"gateways"`
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
