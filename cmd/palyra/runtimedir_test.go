package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// A command that sees another XDG_RUNTIME_DIR than the daemons (another
// login session, sudo) still finds the gateway's admin socket and the
// node's local API, through the paths they recorded beside their state.
func TestSocketsFoundWhateverTheRuntimeDir(t *testing.T) {
	c := newCLI(t)
	delete(c.env, "PALYRA_ADMIN_SOCKET") // the default path, under XDG_RUNTIME_DIR
	c.env["XDG_CONFIG_HOME"] = filepath.Join(t.TempDir(), "config")
	addr := c.startGateway()
	elsewhere := map[string]string{"XDG_RUNTIME_DIR": filepath.Join(t.TempDir(), "elsewhere")}
	if code, out, errOut := c.run(elsewhere, "", "nodes", "list"); code != 0 {
		t.Fatalf("nodes list with another runtime dir: exit %d: %s%s", code, out, errOut)
	}

	var pin struct{ PIN string }
	c.mustJSON(&pin, "pairing", "code", "--auto-approve", "--json")
	if code, _, errOut := c.run(nil, pin.PIN+"\n", "node", "pair", "--gateway", addr, "--pin", "-", "--name", "roamer"); code != 0 {
		t.Fatalf("node pair: exit %d: %s", code, errOut)
	}
	c.background(nil, "connected to ", "node", "run")
	code, out, errOut := c.run(elsewhere, "", "node", "status")
	if code != 0 || !strings.Contains(out, "connected") {
		t.Fatalf("node status with another runtime dir: exit %d: %s%s", code, out, errOut)
	}
}
