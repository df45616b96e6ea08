package main

import (
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/identity/pairing"
)

// TestCLIPairingLimits: `gateway run` takes the pairing limits as flags,
// and `node pair` says when the gateway refuses to start for too many
// attempts, and when to try again.
func TestCLIPairingLimits(t *testing.T) {
	c := newCLI(t)
	for _, bad := range [][]string{
		{"--pairing-burst", "0"},
		{"--pairing-concurrency", "0"},
		{"--pairing-interval", "0s"},
	} {
		rc, _, errOut := c.run(nil, "", append([]string{"gateway", "run", "--listen", "127.0.0.1:0"}, bad...)...)
		if rc != 2 || !strings.Contains(errOut, bad[0]) {
			t.Errorf("gateway run %s: exit %d: %s", strings.Join(bad, " "), rc, errOut)
		}
	}

	addr, _ := c.background(nil, "listening on ", "gateway", "run", "--listen", "127.0.0.1:0",
		"--pairing-burst", "1", "--pairing-interval", "90s")
	code, err := pairing.NewCode(rand.Reader, "42")
	if err != nil {
		t.Fatal(err)
	}
	pin := code.PIN().Display() // a code the gateway never minted
	nodeEnv := map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(t.TempDir(), "node")}
	rc, _, errOut := c.run(nodeEnv, pin+"\n", "node", "pair", "--gateway", addr, "--pin", "-")
	if rc != 1 || !strings.Contains(errOut, pairing.ErrConfirmationFailed.Error()) {
		t.Fatalf("first attempt: exit %d: %s", rc, errOut)
	}
	rc, _, errOut = c.run(nodeEnv, pin+"\n", "node", "pair", "--gateway", addr, "--pin", "-")
	want := "palyra: the gateway at " + addr + " refused to start pairing: too many pairing attempts from this address; try again in 90 s\n"
	if rc != 1 || !strings.HasSuffix(errOut, want) {
		t.Fatalf("second attempt: exit %d: %q, want it to end %q", rc, errOut, want)
	}
}
