//go:build wine

package main

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
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
// The running node serves its local API on a loopback port named, with its
// token, in node.endpoint in its config dir (under LOCALAPPDATA): another
// palyra.exe reads its status through it, and one given a file with
// another token is refused.
//
// Wine has no UDP, so the node's QUIC attempt fails and QUIC is not tested
// here.
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
	configDirs, _ := filepath.Glob(filepath.Join(w.Prefix, "drive_c", "users", "*", "AppData", "Local", "Palyra", "node"))
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

	// As an older release left it: the config in %APPDATA% (roaming).
	// The node moves it back to where this release keeps it, and is the
	// same paired device.
	roaming := filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(configDirs[0]))), "Roaming", "palyra", "node")
	if err := os.MkdirAll(filepath.Dir(roaming), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(configDirs[0], roaming); err != nil {
		t.Fatal(err)
	}

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
	if !regexp.MustCompile(`moved this node's configuration from C:\\users\\[^\\]+\\AppData\\Roaming\\palyra\\node to C:\\users\\[^\\]+\\AppData\\Local\\Palyra\\node`).MatchString(runOut.String()) {
		t.Errorf("palyra.exe node run did not say it moved the old config dir:\n%s", runOut.String())
	}
	if _, err := os.Stat(roaming); !os.IsNotExist(err) {
		t.Errorf("the old config dir is still there: %v", err)
	}
	// Should Wine get UDP, the node would take QUIC and this test should
	// grow a QUIC case.
	if !strings.Contains(runOut.String(), "winapi error #10045") {
		t.Fatalf("the node is on gRPC, but not because Wine refused UDP:\n%s", runOut.String())
	}
	t.Log("QUIC not tested: Wine fails every UDP socket (WSAIoctl SIO_UDP_CONNRESET, winapi error 10045)")

	// The local API, from another palyra.exe.
	if strings.Contains(runOut.String(), "running without the local API") {
		t.Fatalf("palyra.exe node run serves no local API:\n%s", runOut.String())
	}
	endpoint := filepath.Join(configDirs[0], "node.endpoint")
	good, err := os.ReadFile(endpoint)
	if err != nil {
		t.Fatalf("the running node's endpoint file: %v", err)
	}
	status := runUnderWine(t, w, exe, "node", "status")
	if !strings.HasPrefix(status, "connected to Palyra gateway as winbox over gRPC (TCP)") {
		t.Fatalf("palyra.exe node status, beside palyra.exe node run:\n%s", status)
	}
	lines := strings.Split(strings.TrimSpace(string(good)), "\n")
	if len(lines) != 3 {
		t.Fatalf("endpoint file:\n%s", good)
	}
	forgedDir := filepath.Join(w.Prefix, "drive_c", "forged")
	if err := os.MkdirAll(forgedDir, 0o700); err != nil {
		t.Fatal(err)
	}
	forgedToken := strings.Repeat("A", len(lines[2]))
	if err := os.WriteFile(filepath.Join(forgedDir, "node.endpoint"), []byte(lines[0]+"\n"+lines[1]+"\n"+forgedToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), wineDeadline)
	defer cancel()
	refused, err := w.Command(ctx, exe, "node", "status", "--config-dir", `C:\forged`).CombinedOutput()
	if err == nil || !strings.Contains(string(refused), "wrong token") {
		t.Errorf("palyra.exe node status with another token: %v\n%s", err, refused)
	}
	for _, out := range []string{string(refused), runOut.String(), status} {
		if strings.Contains(out, lines[2]) {
			t.Errorf("the token is in an output:\n%s", out)
		}
	}

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

// TestWindowsAdminUnderWine runs TestAdminOverEndpointFile, built for
// Windows, under Wine: the admin commands over the gateway's endpoint file.
func TestWindowsAdminUnderWine(t *testing.T) {
	testwine.TestPackage(t, "github.com/palyra/palyra-go/cmd/palyra", "^TestAdminOverEndpointFile$", 2*time.Minute)
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
