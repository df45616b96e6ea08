// Package builtin is the capabilities a node ships with: system.info,
// system.notify, clipboard.read, clipboard.write, screen.capture,
// files.read and shell.exec. Each is a capability.Capability with its
// schema, privacy class and default (on and allowed for the harmless
// ones; off for the rest, with screen.capture and shell.exec asking the
// owner each time). The registry decides whether a call may run; the
// handlers here enforce what each capability itself promises: files.read
// stays inside one shared folder, shell.exec runs only allow-listed
// programs without a shell, and every output stays bounded.
//
// Desktop access (notifications, clipboard, screen) goes through
// node/desktop; this package must not import the GUI.
package builtin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/palyra/palyra-go/node/capability"
)

// Config is what the built-ins read at each call, so that changes to the
// node config apply without re-registering.
type Config struct {
	// Version is palyra's version, reported by system.info.
	Version string
	// SharedFolder is the one folder files.read may read; "" refuses
	// every files.read.
	SharedFolder string
	// ShellAllow lists the absolute paths of the programs shell.exec may
	// run. Symlinks are resolved on both sides at each call; entries that
	// do not exist are ignored.
	ShellAllow []string
	// ShellTimeout bounds each shell.exec run (and the call's own deadline
	// bounds it further); zero means DefaultShellTimeout.
	ShellTimeout time.Duration
	// ShellMaxOutput bounds stdout and stderr together, in bytes; zero
	// means DefaultShellMaxOutput. A command that writes more is killed.
	ShellMaxOutput int
	// FileMaxSize is the largest file files.read returns, in bytes; zero
	// means DefaultFileMaxSize.
	FileMaxSize int64
}

const (
	DefaultShellTimeout   = 30 * time.Second
	DefaultShellMaxOutput = 64 << 10
	DefaultFileMaxSize    = 512 << 10
)

func (c Config) withDefaults() Config {
	if c.ShellTimeout <= 0 {
		c.ShellTimeout = DefaultShellTimeout
	}
	if c.ShellMaxOutput <= 0 {
		c.ShellMaxOutput = DefaultShellMaxOutput
	}
	if c.FileMaxSize <= 0 {
		c.FileMaxSize = DefaultFileMaxSize
	}
	return c
}

// All returns every built-in, always in the same order. cfg is called at
// each call; nil means the zero Config.
func All(cfg func() Config) []capability.Capability {
	if cfg == nil {
		cfg = func() Config { return Config{} }
	}
	current := func() Config { return cfg().withDefaults() }
	return []capability.Capability{
		systemInfo(current),
		systemNotify(),
		clipboardRead(),
		clipboardWrite(),
		screenCapture(),
		filesRead(current),
		shellExec(current),
	}
}

// marshal encodes a handler's output. HTML escaping is off: it only makes
// text that is no HTML larger.
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding output: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// decodeArgs decodes arguments the registry has already checked against
// the schema into a capability's typed struct; an error here means a
// handler was called directly with bad arguments, or a value fits the
// schema but not the Go type (1.0 for an integer).
func decodeArgs(args json.RawMessage, v any) error { return capability.DecodeArgs(args, v) }

// sizeText writes a byte count for people, exactly where it matters: a
// limit of 4 KiB and a file of 4097 bytes must not both read "4.0 KiB".
func sizeText(n int64) string {
	switch {
	case n > 0 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n > 0 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB (%d bytes)", float64(n)/(1<<20), n)
	}
	return fmt.Sprintf("%d bytes", n)
}
