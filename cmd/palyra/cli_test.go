package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/internal/testpg"
	"github.com/palyra/palyra-go/internal/testwine"
	"github.com/palyra/palyra-go/internal/unixsock"
	"github.com/palyra/palyra-go/internal/version"
)

func TestMain(m *testing.M) {
	os.Setenv("QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING", "true")
	os.Exit(testpg.Main(m))
}

// cli runs palyra in-process with its own environment.
type cli struct {
	t   *testing.T
	env map[string]string
}

func newCLI(t *testing.T) *cli {
	// testwine.TempDir: the Windows tests run under Wine too.
	dir := testwine.TempDir(t)
	return &cli{t: t, env: map[string]string{
		"PALYRA_ADMIN_SOCKET": filepath.Join(dir, "run", "admin.sock"),
		"XDG_DATA_HOME":       filepath.Join(dir, "data"),
		"XDG_RUNTIME_DIR":     filepath.Join(dir, "run"),
		"PALYRA_SECRET_STORE": "file",
	}}
}

func (c *cli) environment(stdin string, stdout, stderr *syncbuf.Buffer, extra map[string]string) *environment {
	return &environment{
		stdin: strings.NewReader(stdin), stdout: stdout, stderr: stderr,
		getenv: func(k string) string {
			if v, ok := extra[k]; ok {
				return v
			}
			return c.env[k]
		},
	}
}

// run runs a command to completion and returns its exit code and output.
func (c *cli) run(extra map[string]string, stdin string, args ...string) (int, string, string) {
	var out, errOut syncbuf.Buffer
	code := run(c.t.Context(), c.environment(stdin, &out, &errOut, extra), args)
	return code, out.String(), errOut.String()
}

func (c *cli) mustJSON(v any, args ...string) {
	c.t.Helper()
	code, out, errOut := c.run(nil, "", args...)
	if code != 0 {
		c.t.Fatalf("palyra %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		c.t.Fatalf("palyra %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func TestCLIPairApproveStatus(t *testing.T) {
	c := newCLI(t)
	addr := c.startGateway()

	var code struct {
		PIN       string `json:"pin"`
		Link      string `json:"link"`
		ExpiresAt string `json:"expires_at"`
	}
	c.mustJSON(&code, "pairing", "code", "--json", "--ttl", "5m")
	if len(code.PIN) != 11 || !strings.HasPrefix(code.Link, "palyra://pair?v=1&") {
		t.Fatalf("pairing code output: %+v", code)
	}
	if exp, err := time.Parse(time.RFC3339, code.ExpiresAt); err != nil || time.Until(exp) > 5*time.Minute+time.Second {
		t.Fatalf("expires_at %q: %v", code.ExpiresAt, err)
	}

	// The PIN comes on standard input, so it is not in the process list.
	nodeEnv := map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(t.TempDir(), "node")}
	pairDone := make(chan struct {
		code        int
		out, errOut string
	}, 1)
	go func() {
		rc, out, errOut := c.run(nodeEnv, code.PIN+"\n", "node", "pair", "--gateway", addr, "--pin", "-", "--name", "cli-laptop", "--json")
		pairDone <- struct {
			code        int
			out, errOut string
		}{rc, out, errOut}
	}()

	// The request shows up pending, and gets approved.
	var reqs []map[string]any
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for len(reqs) == 0 && time.Now().Before(deadline) {
		c.mustJSON(&reqs, "pairing", "list", "--json")
		if len(reqs) == 0 {
			<-tick.C
		}
	}
	if len(reqs) != 1 || reqs[0]["state"] != "pending" || reqs[0]["name"] != "cli-laptop" {
		t.Fatalf("pairing list: %v", reqs)
	}
	for _, k := range []string{"request_id", "name", "platform", "verification_code", "state"} {
		if _, ok := reqs[0][k]; !ok {
			t.Fatalf("pairing list JSON lacks %q: %v", k, reqs[0])
		}
	}
	if rc, _, errOut := c.run(nil, "", "pairing", "approve", reqs[0]["request_id"].(string)); rc != 0 {
		t.Fatalf("approve: %s", errOut)
	}
	res := <-pairDone
	if res.code != 0 {
		t.Fatalf("node pair: exit %d\n%s", res.code, res.errOut)
	}
	if !strings.Contains(res.errOut, "verification code: "+reqs[0]["verification_code"].(string)) {
		t.Fatalf("node pair did not show the verification code:\n%s", res.errOut)
	}

	// Status without a running node: paired, offline.
	code2, out, errOut := c.run(nodeEnv, "", "node", "status", "--json")
	if code2 != 0 {
		t.Fatalf("node status: %s", errOut)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(out), &st); err != nil || st["state"] != "offline" {
		t.Fatalf("node status: %v %s", err, out)
	}

	// The admin lists, as tables for people and as JSON, and revoking and
	// removing the device.
	id := st["device_id"].(string)
	c.wantLines("pairing list --all",
		"REQUEST  NAME  PLATFORM  VERIFICATION  STATE",
		reqs[0]["request_id"].(string)+"  cli-laptop  "+reqs[0]["platform"].(string)+"  "+reqs[0]["verification_code"].(string)+"  approved")
	c.wantLines("pairing list", "no pairing requests")
	c.wantLines("nodes list", "no nodes") // the node has never connected
	c.wantLines("devices list", "DEVICE  NAME  PLATFORM  REVOKED  PAIRED", id+"  cli-laptop  "+reqs[0]["platform"].(string)+"  false  ")
	var devs []map[string]any
	c.mustJSON(&devs, "devices", "list", "--json")
	if len(devs) != 1 || devs[0]["device_id"] != id || devs[0]["revoked"] != false || devs[0]["certificate_not_after"] == "" {
		t.Fatalf("devices list --json: %v", devs)
	}
	c.wantLines("devices revoke "+id, "revoked "+id+" (cli-laptop); its sessions are closed")
	c.mustJSON(&devs, "devices", "list", "--json")
	if len(devs) != 1 || devs[0]["revoked"] != true {
		t.Fatalf("devices list --json after revoke: %v", devs)
	}
	c.wantLines("devices remove "+id, "removed "+id+"; it stays refused")
	c.wantLines("devices list", "no devices")

	// Bad input: a malformed PIN is refused locally with a clear message.
	rc, _, errOut := c.run(nodeEnv, "", "node", "pair", "--gateway", addr, "--pin", "123-456-78")
	if rc == 0 || !strings.Contains(errOut, "already paired") {
		t.Fatalf("pairing an already paired node: %d %s", rc, errOut)
	}
	other := map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(t.TempDir(), "other")}
	rc, _, errOut = c.run(other, "", "node", "pair", "--gateway", addr, "--pin", "123-456-78")
	if rc != 1 || !strings.Contains(errOut, "it has 8 digits, a PIN has 9") {
		t.Fatalf("short PIN: exit %d: %s", rc, errOut)
	}
	rc, _, errOut = c.run(other, "", "node", "pair", "--link", "palyra://pair?v=9")
	if rc != 1 || !strings.Contains(errOut, "update Palyra") {
		t.Fatalf("future link: exit %d: %s", rc, errOut)
	}
	rc, _, errOut = c.run(nil, "", "pairing", "approve")
	if rc != 2 || !strings.Contains(errOut, "Usage: palyra pairing approve REQUEST_ID") {
		t.Fatalf("approve without an ID: exit %d: %s", rc, errOut)
	}
	rc, _, errOut = c.run(map[string]string{"PALYRA_ADMIN_SOCKET": filepath.Join(t.TempDir(), "none.sock")}, "", "nodes", "list")
	if rc != 1 || !strings.Contains(errOut, "is the gateway running?") {
		t.Fatalf("no gateway: exit %d: %s", rc, errOut)
	}
}

// wantLines runs palyra with the words of command and checks that its
// output has a line starting with each of want, in order. Runs of spaces
// (the tables' padding) are read as two.
func (c *cli) wantLines(command string, want ...string) {
	c.t.Helper()
	args := strings.Fields(command)
	rc, out, errOut := c.run(nil, "", args...)
	if rc != 0 {
		c.t.Fatalf("palyra %s: exit %d: %s", command, rc, errOut)
	}
	lines := strings.Split(regexp.MustCompile(`  +`).ReplaceAllString(out, "  "), "\n")
	for _, w := range want {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.HasPrefix(l, w) })
		if i < 0 {
			c.t.Fatalf("palyra %s: no line starting %q in:\n%s", command, w, out)
		}
		lines = lines[i+1:]
	}
}

// startGateway runs `palyra gateway run` in the background until the test
// ends and returns its address.
func (c *cli) startGateway() string {
	c.t.Helper()
	addr, _ := c.background(nil, "listening on ", "gateway", "run", "--listen", "127.0.0.1:0")
	return addr
}

// background runs a command until the test ends, waits for a line of its
// standard error containing ready and returns the word after ready and the
// command's standard output.
func (c *cli) background(extra map[string]string, ready string, args ...string) (string, *syncbuf.Buffer) {
	c.t.Helper()
	word, out, _ := c.stoppable(extra, ready, args...)
	return word, out
}

// stoppable is background, and also returns what stops the command (as
// an interrupt does) and waits for its end.
func (c *cli) stoppable(extra map[string]string, ready string, args ...string) (string, *syncbuf.Buffer, func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, c.environment("", &out, &errOut, extra), args)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			<-done
		})
	}
	c.t.Cleanup(stop)
	line := waitForLine(c.t, &errOut, ready)
	word := strings.Fields(strings.SplitN(line, ready, 2)[1] + " ")[0]
	return strings.TrimSuffix(word, ";"), &out, stop
}

// waitForLine waits until the buffer holds a line containing s.
func waitForLine(t *testing.T, b *syncbuf.Buffer, s string) string {
	t.Helper()
	timer := time.NewTimer(20 * time.Second)
	defer timer.Stop()
	for {
		for _, line := range strings.Split(b.String(), "\n") {
			if strings.Contains(line, s) {
				return line
			}
		}
		select {
		case <-b.Wrote():
		case <-timer.C:
			t.Fatalf("no line with %q in:\n%s", s, b.String())
		}
	}
}

// TestVersion: `palyra version` and --version print internal/version's.
func TestVersion(t *testing.T) {
	c := newCLI(t)
	for _, arg := range []string{"version", "--version"} {
		if code, out, errOut := c.run(nil, "", arg); code != 0 || out != "palyra "+version.Version+"\n" {
			t.Errorf("palyra %s: exit %d, %q %q", arg, code, out, errOut)
		}
	}
}

// An admin command tells a missing socket from one its gateway left behind.
func TestAdminSocketMessages(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "admin.sock")
	code, _, stderr := c.run(nil, "", "nodes", "list", "--admin-socket", path)
	if code == 0 || !strings.Contains(stderr, "no gateway admin socket at "+path) {
		t.Errorf("no socket: exit %d, %q", code, stderr)
	}
	ln, err := unixsock.Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	code, _, stderr = c.run(nil, "", "nodes", "list", "--admin-socket", path)
	if code == 0 || !strings.Contains(stderr, "its process is not running") {
		t.Errorf("stale socket: exit %d, %q", code, stderr)
	}
}

// TestGatewayLimitFlags: the connection caps given as flags are the
// gateway's, and caps that cannot work are refused with what to change.
func TestGatewayLimitFlags(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	// The gateway logs its limits as it starts.
	got, _ := c.background(nil, "max_quic_handshakes=", "gateway", "run", "--listen", "127.0.0.1:0",
		"--max-unauthenticated-conns", "300", "--max-unauthenticated-per-source", "30", "--max-quic-handshakes", "80")
	if got != "80" {
		t.Errorf("the gateway runs with %s QUIC handshakes at most, not the 80 asked for", got)
	}
	if got, _ := newCLI(t).background(nil, "max_quic_handshakes_per_source=", "gateway", "run", "--listen", "127.0.0.1:0", "--max-quic-handshakes-per-source", "-1"); got != "0" {
		t.Errorf("the gateway caps one source's QUIC handshakes at %s, not none as asked for", got)
	}
	if got, _ := newCLI(t).background(nil, "max_admitting_nodes=", "gateway", "run", "--listen", "127.0.0.1:0", "--max-admitting-nodes", "40"); got != "40" {
		t.Errorf("the gateway admits %s registering nodes at most, not the 40 asked for", got)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-unauthenticated-conns", "100000000"}, "a cap of 100000000 unauthenticated TCP connections does not fit the open-file limit (ulimit -n)"},
		{[]string{"--max-unauthenticated-conns", "100", "--max-unauthenticated-per-source", "100"},
			"a cap of 100 unauthenticated TCP connections per source is not below the cap of 100 in all"},
		{[]string{"--max-quic-handshakes", "50", "--max-quic-handshakes-per-source", "60"},
			"a cap of 60 QUIC handshakes per source is not below the cap of 50 in all"},
	} {
		args := append([]string{"gateway", "run", "--listen", "127.0.0.1:0"}, tc.args...)
		if code, _, stderr := c.run(nil, "", args...); code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("palyra %s: exit %d, %q; want %q", strings.Join(args, " "), code, stderr, tc.want)
		}
	}
}
