//go:build wine

package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testwine"
)

// wineDeadline bounds each palyra.exe step under Wine (a start takes about
// a second here).
const wineDeadline = 60 * time.Second

// TestWindowsNodeUnderWine: palyra.exe, under Wine, is a node of a Linux
// gateway. Its doctor finds Credential Manager; it pairs by PIN, with the
// device key stored in Credential Manager only; after a wineserver restart
// a new process reads the key from there, connects over gRPC on TCP, and
// answers system.info with Windows facts.
//
// Wine has no UDP, so the node's QUIC attempt fails and QUIC is not tested
// here; nor is the node's local API (Wine has no Unix sockets either).
func TestWindowsNodeUnderWine(t *testing.T) {
	exe := testwine.BuildExe(t, "github.com/palyra/palyra-go/cmd/palyra")
	w := testwine.New(t)
	c := newCLI(t)
	addr := c.startGateway()

	out := runUnderWine(t, w, exe, "doctor")
	if !strings.Contains(out, "ok    secret store: the OS keychain (profile \"default\") stores, reads and deletes items") {
		t.Fatalf("palyra.exe doctor did not find Credential Manager:\n%s", out)
	}

	// Pairing, with the admin's approval on the Linux side.
	var code struct{ PIN string }
	c.mustJSON(&code, "pairing", "code", "--json")
	ctx, cancel := context.WithTimeout(t.Context(), wineDeadline)
	defer cancel()
	pair := w.Command(ctx, exe, "node", "pair", "--gateway", addr, "--pin", "-", "--name", "winbox")
	pair.Stdin = strings.NewReader(code.PIN + "\n")
	var pairOut syncbuf.Buffer
	pair.Stdout, pair.Stderr = &pairOut, &pairOut
	if err := pair.Start(); err != nil {
		t.Fatal(err)
	}
	paired := make(chan error, 1)
	go func() { paired <- pair.Wait() }()
	waitForLine(t, &pairOut, "verification code: ")
	var reqs []map[string]any
	c.mustJSON(&reqs, "pairing", "list", "--json")
	if len(reqs) != 1 || reqs[0]["platform"] != "windows/amd64" || reqs[0]["name"] != "winbox" {
		t.Fatalf("pairing list: %v", reqs)
	}
	if !strings.Contains(pairOut.String(), "verification code: "+reqs[0]["verification_code"].(string)) {
		t.Fatalf("palyra.exe showed another verification code than the gateway's %v:\n%s", reqs[0]["verification_code"], pairOut.String())
	}
	if rc, _, errOut := c.run(nil, "", "pairing", "approve", reqs[0]["request_id"].(string)); rc != 0 {
		t.Fatalf("approve: %s", errOut)
	}
	select {
	case err := <-paired:
		if err != nil {
			t.Fatalf("palyra.exe node pair: %v\n%s", err, pairOut.String())
		}
	case <-time.After(wineDeadline):
		t.Fatalf("palyra.exe node pair did not end after the approval:\n%s", pairOut.String())
	}

	// The key is in Credential Manager, which Wine keeps in the registry
	// (the password encrypted), and in no file of the node's.
	w.RestartServer(t)
	reg := w.UserRegistry(t)
	for _, item := range []string{"device-key", "device-cert", "gateway-ca"} {
		if !strings.Contains(reg, `[Software\\Wine\\Credential Manager\\Generic: palyra/default:`+item+`]`) {
			t.Errorf("no %s in Wine's Credential Manager", item)
		}
	}
	// The keychain stores base64: "LS0tLS1CRUdJTi" is "-----BEGIN".
	if strings.Contains(reg, "LS0tLS1CRUdJTi") || strings.Contains(reg, "PRIVATE KEY") {
		t.Error("the registry holds a PEM in the clear")
	}
	configDirs, _ := filepath.Glob(filepath.Join(w.Prefix, "drive_c", "users", "*", "AppData", "Roaming", "palyra", "node"))
	if len(configDirs) != 1 {
		t.Fatalf("the node's config dir in the prefix: %v", configDirs)
	}
	filepath.WalkDir(configDirs[0], func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if b, _ := os.ReadFile(path); strings.Contains(string(b), "PRIVATE KEY") {
				t.Errorf("%s holds a private key", path)
			}
		}
		return nil
	})

	// A new process, under a new wineserver, reads the key and connects.
	ctx, cancel = context.WithCancel(t.Context())
	t.Cleanup(cancel)
	run := w.Command(ctx, exe, "node", "run")
	var runOut syncbuf.Buffer
	run.Stdout, run.Stderr = &runOut, &runOut
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = run.Wait() })
	waitForLine(t, &runOut, "connected to Palyra gateway as winbox over gRPC (TCP)")
	// Should Wine get UDP, the node would take QUIC and this test should
	// grow a QUIC case.
	if !strings.Contains(runOut.String(), "winapi error #10045") {
		t.Fatalf("the node is on gRPC, but not because Wine refused UDP:\n%s", runOut.String())
	}
	t.Log("QUIC not tested: Wine fails every UDP socket (WSAIoctl SIO_UDP_CONNRESET, winapi error 10045)")

	var res struct {
		OK     bool `json:"ok"`
		Output struct {
			OS, Arch, User string
		} `json:"output"`
	}
	c.mustJSON(&res, "nodes", "invoke", "winbox", "system.info", "--json")
	if !res.OK || res.Output.OS != "windows" || res.Output.Arch != "amd64" || !strings.Contains(res.Output.User, `\`) {
		t.Fatalf("system.info from the Windows node: %+v\n%s", res, runOut.String())
	}
}

// runUnderWine runs palyra.exe with args to completion and returns its
// output; it fails t unless it exits 0.
func runUnderWine(t *testing.T, w *testwine.Wine, exe string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), wineDeadline)
	defer cancel()
	cmd := w.Command(ctx, exe, args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("palyra.exe %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}
