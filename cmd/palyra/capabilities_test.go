package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCLICapabilities: a node shares what its owner turns on, live, and
// the gateway's admin sees and invokes it, through the commands a person
// types.
func TestCLICapabilities(t *testing.T) {
	c := newCLI(t)
	addr := c.startGateway()
	var code struct{ PIN string }
	c.mustJSON(&code, "pairing", "code", "--auto-approve", "--json")
	nodeEnv := map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(t.TempDir(), "node")}
	if rc, _, errOut := c.run(nodeEnv, code.PIN+"\n", "node", "pair", "--gateway", addr, "--pin", "-", "--name", "sharer"); rc != 0 {
		t.Fatalf("node pair: %s", errOut)
	}

	// Offline, the owner's choices go to the files.
	var caps []map[string]any
	if rc, out, errOut := c.run(nodeEnv, "", "node", "capabilities", "enable", "clipboard.read", "--json"); rc != 0 || json.Unmarshal([]byte(out), &caps) != nil {
		t.Fatalf("node capabilities enable: exit %d: %s%s", rc, out, errOut)
	}
	if got := capabilityEnabled(caps, "clipboard.read"); got != true {
		t.Fatalf("clipboard.read enabled = %v in %v", got, caps)
	}
	if rc, _, errOut := c.run(nodeEnv, "", "node", "capabilities", "enable", "no.such"); rc != 1 || !strings.Contains(errOut, "no capability named") {
		t.Fatalf("enabling an unknown capability: exit %d: %s", rc, errOut)
	}
	if rc, _, errOut := c.run(nodeEnv, "", "node", "capabilities", "consent", "shell.exec", "sometimes"); rc != 2 && rc != 1 || !strings.Contains(errOut, "deny, ask or allow") {
		t.Fatalf("bad consent: exit %d: %s", rc, errOut)
	}

	c.background(nodeEnv, "connected to ", "node", "run")
	// The flag wins over the environment.
	badEnv := map[string]string{"PALYRA_ADMIN_SOCKET": filepath.Join(t.TempDir(), "none.sock")}
	if rc, _, errOut := c.run(badEnv, "", "nodes", "list", "--admin-socket", c.env["PALYRA_ADMIN_SOCKET"]); rc != 0 {
		t.Fatalf("--admin-socket ignored: %s", errOut)
	}
	var nodes []struct {
		DeviceID string `json:"device_id"`
		Online   bool   `json:"online"`
	}
	c.mustJSON(&nodes, "nodes", "list", "--json")
	if len(nodes) != 1 {
		t.Fatalf("nodes list: %v", nodes)
	}
	id := nodes[0].DeviceID

	var res struct {
		RequestID string          `json:"request_id"`
		OK        bool            `json:"ok"`
		Output    json.RawMessage `json:"output"`
		Error     *struct {
			Code, Message string
		} `json:"error"`
	}
	c.mustJSON(&res, "nodes", "invoke", id, "system.info", "--json")
	if !res.OK || res.Error != nil || len(res.RequestID) != 26 || !strings.Contains(string(res.Output), `"hostname"`) {
		t.Fatalf("nodes invoke system.info: %+v %s", res, res.Output)
	}

	// A change while the node runs reaches the gateway at once, and the
	// admin's event watch shows it.
	_, watched := c.background(nil, "watching node events", "nodes", "watch", id, "--json")
	if rc, _, errOut := c.run(nodeEnv, "", "node", "capabilities", "disable", "system.info"); rc != 0 {
		t.Fatalf("disable while running: %s", errOut)
	}
	waitDescribe(t, c, id, "system.info", false)
	if line := waitForLine(t, watched, `"kind":"capability_changed"`); !strings.Contains(line, id) {
		t.Fatalf("event for another device: %s", line)
	}
	rc, out, _ := c.run(nil, "", "nodes", "invoke", id, "system.info", "--json")
	if err := json.Unmarshal([]byte(out), &res); rc != 1 || err != nil || res.OK || res.Error == nil || res.Error.Code != "disabled" {
		t.Fatalf("invoking a disabled capability: exit %d: %s", rc, out)
	}
	rc, _, errOut := c.run(nil, "", "nodes", "invoke", id, "system.info")
	if rc != 1 || !strings.Contains(errOut, "system.info failed (disabled)") {
		t.Fatalf("invoking a disabled capability, for people: exit %d: %s", rc, errOut)
	}
	rc, _, errOut = c.run(nil, "", "nodes", "invoke", id, "system.info", "--args", "[1,2]")
	if rc != 1 || !strings.Contains(errOut, "must be a JSON object") {
		t.Fatalf("array as arguments: exit %d: %s", rc, errOut)
	}
	rc, _, errOut = c.run(nil, "", "nodes", "describe", "AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAAAAA")
	if rc != 1 {
		t.Fatalf("describing an unknown node: exit %d: %s", rc, errOut)
	}
}

func capabilityEnabled(caps []map[string]any, name string) any {
	for _, c := range caps {
		if c["name"] == name {
			return c["enabled"]
		}
	}
	return nil
}

// waitDescribe polls `nodes describe` until the capability's enabled flag
// is as wanted, bounded by a deadline.
func waitDescribe(t *testing.T, c *cli, id, name string, enabled bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var d struct {
		Capabilities []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
		} `json:"capabilities"`
	}
	for time.Now().Before(deadline) {
		c.mustJSON(&d, "nodes", "describe", id, "--json")
		for _, cp := range d.Capabilities {
			if cp.Name == name && cp.Enabled == enabled {
				return
			}
		}
		<-tick.C
	}
	t.Fatalf("nodes describe never showed %s enabled=%v: %+v", name, enabled, d)
}

func TestPrintableStripsEscapes(t *testing.T) {
	if got := printable("evil\x1b]0;pwned\x07name\r\n"); strings.ContainsAny(got, "\x1b\x07\r\n") || !strings.Contains(got, "evil") || !strings.Contains(got, "name") {
		t.Fatalf("printable = %q", got)
	}
	if got := printable("Zoë's laptop"); got != "Zoë's laptop" {
		t.Fatalf("printable changed plain text: %q", got)
	}
}
