package main

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/syncbuf"
)

// A revoked node says so, with the date and what to do next, even when it
// is not running, until the owner forgets the gateway.
func TestCLIStatusRemembersRevocation(t *testing.T) {
	c := newCLI(t)
	c.startGateway()
	var code struct {
		Link string `json:"link"`
	}
	c.mustJSON(&code, "pairing", "code", "--json", "--auto-approve")
	nodeEnv := map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(t.TempDir(), "node")}
	if rc, _, errOut := c.run(nodeEnv, code.Link+"\n", "node", "pair", "--link", "-", "--name", "cli-laptop"); rc != 0 {
		t.Fatalf("node pair: %s", errOut)
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var out, errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, c.environment("", &out, &errOut, nodeEnv), []string{"node", "run"}) }()
	waitForLine(t, &errOut, "connected to ")
	var devs []map[string]any
	c.mustJSON(&devs, "devices", "list", "--json")
	if rc, _, e := c.run(nil, "", "devices", "revoke", devs[0]["device_id"].(string)); rc != 0 {
		t.Fatalf("revoke: %s", e)
	}
	select {
	case rc := <-done:
		if rc == 0 {
			t.Fatal("node run ended with exit 0 after the revocation")
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("node run did not end after the revocation:\n%s", errOut.String())
	}

	rc, text, e := c.run(nodeEnv, "", "node", "status")
	if rc != 0 || !strings.HasPrefix(text, "revoked by the gateway on ") || !strings.Contains(text, "palyra node forget") {
		t.Fatalf("node status of a revoked node: exit %d: %s%s", rc, text, e)
	}
	rc, js, e := c.run(nodeEnv, "", "node", "status", "--json")
	var got map[string]any
	if rc != 0 || json.Unmarshal([]byte(js), &got) != nil || got["state"] != "revoked" || got["revoked_at"] == nil {
		t.Fatalf("node status --json of a revoked node: exit %d: %s%s", rc, js, e)
	}
	if rc, _, e := c.run(nodeEnv, "", "node", "forget"); rc != 0 {
		t.Fatalf("forget: %s", e)
	}
	if rc, text, _ := c.run(nodeEnv, "", "node", "status"); rc != 0 || !strings.HasPrefix(text, "not paired") {
		t.Fatalf("node status after forget: %s", text)
	}
}
