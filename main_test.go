package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/palyra/palyra-go/identity/pairing/qr"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/localapi"
	adminv1 "github.com/palyra/palyra-go/proto/admin/v1"
)

// artifactDir is where the screenshots go (git-ignored), for a person to
// look at.
const artifactDir = "artifacts/desktop-app"

// Deadlines of the end-to-end test.
const (
	startDeadline   = 90 * time.Second // app start, pairing and connection
	stepDeadline    = 30 * time.Second
	pollInterval    = 100 * time.Millisecond
	keyringPassword = "test"
)

// desktopEnv is one throwaway desktop: an X server, a session bus with an
// unlocked gnome-keyring, and private HOME and XDG directories.
type desktopEnv struct {
	t       *testing.T
	dir     string
	env     []string
	display string
	bus     string
	bin     string
	// closed holds the windows of the running app that pressClosing saw
	// close, so that a new window with the same title is never taken for
	// an old one that X has not destroyed yet.
	closed map[string]bool
	// lastSearchErr is the last error windows logged.
	lastSearchErr string
}

func TestParseFlags(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
		check   func(t *testing.T, c config)
	}{
		{name: "defaults", env: map[string]string{"XDG_CONFIG_HOME": "/x"}, check: func(t *testing.T, c config) {
			if c.secretStore != "keychain" || c.profile != "default" || c.localGateway || c.configDir != "/x/palyra/node" || c.configDirGiven {
				t.Errorf("%+v", c)
			}
		}},
		{name: "file store from env", env: map[string]string{"PALYRA_SECRET_STORE": "file", "PALYRA_CONFIG_DIR": "/c"}, check: func(t *testing.T, c config) {
			if c.secretStore != "file" || c.configDir != "/c" || !c.configDirGiven {
				t.Errorf("%+v", c)
			}
		}},
		{name: "local gateway", args: []string{"--local-gateway", "--config-dir", "/d"}, check: func(t *testing.T, c config) {
			if !c.localGateway || c.configDir != "/d" {
				t.Errorf("%+v", c)
			}
			if got := nodeSocket(c, env(nil)); got != "/d/node.sock" {
				t.Errorf("socket %s", got)
			}
		}},
		{name: "bad store", args: []string{"--secret-store", "vault"}, wantErr: `--secret-store must be keychain or file, not "vault"`},
		{name: "both gateways", args: []string{"--local-gateway", "--headless-gateway"}, wantErr: "leave out --local-gateway"},
		{name: "stray argument", args: []string{"now"}, wantErr: `unexpected argument "now"`},
		{name: "unknown flag", args: []string{"--tray"}, wantErr: "flag provided but not defined: -tray"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr strings.Builder
			c, err := parseFlags(tc.args, env(tc.env), &stderr)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, c)
		})
	}
	// Starting at login keeps what makes it this node, environment
	// included, as flags with absolute paths; the defaults stay out.
	c, err := parseFlags([]string{"--local-gateway", "--profile", "work"}, env(map[string]string{"PALYRA_CONFIG_DIR": "rel/conf", "PALYRA_SECRET_STORE": "file"}), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := filepath.Abs("rel/conf")
	if got, want := strings.Join(c.autostartArgs(), " "), "--local-gateway --config-dir "+conf+" --secret-store file --profile work"; got != want {
		t.Errorf("autostart args %q, want %q", got, want)
	}
	if c, _ := parseFlags(nil, env(map[string]string{"XDG_CONFIG_HOME": "/x"}), io.Discard); len(c.autostartArgs()) != 0 {
		t.Errorf("autostart args with the defaults: %q", c.autostartArgs())
	}
	var help strings.Builder
	if _, err := parseFlags([]string{"--help"}, env(nil), &help); err == nil || !strings.Contains(help.String(), "--headless-gateway") || !strings.Contains(help.String(), "-secret-store") {
		t.Errorf("help: %v\n%s", err, help.String())
	}
}

// TestDesktopUnderXvfb runs the real binary on a throwaway X server with a
// real session bus and gnome-keyring: it starts with the local gateway,
// pairs itself, connects, shows its window, and after a restart
// reconnects without pairing again. Screenshots go to artifacts/desktop-app.
func TestDesktopUnderXvfb(t *testing.T) {
	d := newDesktop(t)
	gwDir := filepath.Join(d.dir, "gw")
	cfgDir := filepath.Join(d.dir, "home", "config", "palyra", "node")
	args := []string{"--local-gateway", "--config-dir", cfgDir, "--gateway-dir", gwDir}
	socket := filepath.Join(cfgDir, "node.sock")

	app := d.start("first", args...)
	st := waitState(t, socket, node.StateConnected, startDeadline, app)
	if st.DeviceID == "" || !strings.HasPrefix(st.GatewayName, "Palyra local gateway on ") || st.Transport != wire.TransportQUIC {
		t.Fatalf("status after start: %+v", st)
	}
	admin := adminClient(t, filepath.Join(gwDir, "admin.sock"))
	nodes := listNodes(t, admin)
	if len(nodes) != 1 || nodes[0].GetDeviceId() != st.DeviceID || !nodes[0].GetOnline() {
		t.Fatalf("gateway's nodes: %v (device %s)", nodes, st.DeviceID)
	}
	if !strings.Contains(app.log(), "no system tray here; showing the main window instead") {
		t.Errorf("no log line about the missing tray:\n%s", app.log())
	}
	win := d.window("Palyra")
	d.screenshot("main-window-connected")

	// Toggle clipboard.read from the window with the keyboard: Tab moves
	// through Pair, Forget, Run local gateway, Show pairing code, then the
	// capabilities in order (clipboard.read first); space toggles.
	if capEnabled(t, admin, st.DeviceID, "clipboard.read") {
		t.Fatal("clipboard.read is on before the test turned it on")
	}
	d.press(win, "Tab", "Tab", "Tab", "Tab", "Tab", "space")
	waitFor(t, stepDeadline, "the gateway to see clipboard.read on", func() bool { return capEnabled(t, admin, st.DeviceID, "clipboard.read") })
	d.screenshot("main-window-capability-on")

	// A second, headless node joins through "Show pairing code…" (one back
	// from clipboard.read), with the QR code read off the screen.
	other := pairSecondNode(t, d, win, admin)

	// Stopping the local gateway keeps the pairing: the app shows itself
	// offline and retrying, and connects again when it runs again. "Run
	// local gateway" is one back from "Show pairing code…".
	d.press(win, "shift+Tab", "space")
	waitFor(t, stepDeadline, "the local gateway to stop", func() bool { return strings.Contains(app.log(), "local gateway stopped") })
	// Between attempts: the agent is offline, waiting to retry, before and
	// after the capture (it spends a while connecting in each attempt).
	// The first wait long enough may come late: each attempt waits 3 s
	// for an answer, which the backoff (1, 2, 4, 8 s, ±20 %) counts in,
	// so the first few waits can all be nothing, and the first of 5 s
	// comes some 20 s in.
	waitFor(t, 2*stepDeadline, "a capture of the app offline and retrying", func() bool {
		before, ok := offlineUntil(t, socket)
		if !ok {
			return false
		}
		d.screenshot("main-window-offline")
		after, ok := offlineUntil(t, socket)
		return ok && after.Equal(before)
	})
	d.press(win, "space")
	waitState(t, socket, node.StateConnected, stepDeadline, app)
	waitFor(t, stepDeadline, "both nodes online again", func() bool {
		online := 0
		for _, n := range listNodes(t, admin) {
			if n.GetOnline() && (n.GetDeviceId() == st.DeviceID || n.GetDeviceId() == other) {
				online++
			}
		}
		return online == 2
	})

	// The pairing wizard, from the first button (two back from "Run local
	// gateway").
	d.press(win, "shift+Tab", "shift+Tab", "space")
	wiz := d.window("Pair with a gateway")
	// There is no window manager to place it: move it off the main window.
	d.xdotool("windowmove", "--sync", wiz, "620", "0")
	d.screenshot("pairing-wizard")

	app.stop()
	if strings.Count(app.log(), "paired this device with the local gateway") != 1 {
		t.Fatalf("first run did not pair exactly once:\n%s", app.log())
	}

	// Restart: the same device reconnects from the keychain, no pairing.
	app2 := d.start("second", args...)
	st2 := waitState(t, socket, node.StateConnected, startDeadline, app2)
	if st2.DeviceID != st.DeviceID {
		t.Fatalf("device after restart %s, want %s", st2.DeviceID, st.DeviceID)
	}
	if strings.Contains(app2.log(), "pairing code minted") || strings.Contains(app2.log(), "paired this device") {
		t.Errorf("the restarted app paired again:\n%s", app2.log())
	}
	admin2 := adminClient(t, filepath.Join(gwDir, "admin.sock"))
	devs, err := admin2.ListDevices(t.Context(), &adminv1.ListDevicesRequest{})
	if err != nil || len(devs.GetDevices()) != 2 {
		t.Fatalf("devices after restart (this one and the headless node): %v, %v", devs, err)
	}
	if !capEnabled(t, admin2, st.DeviceID, "clipboard.read") {
		t.Error("clipboard.read is off after the restart; the choice was not kept")
	}
	d.window("Palyra")
	d.screenshot("main-window-reconnected")

	consentPrompts(t, d, socket, admin2, st.DeviceID)
	app2.stop()
}

// consentPrompts shares shell.exec with /bin/echo allowed through the
// app's local API (consent left at "ask"), invokes it from the gateway's
// admin API and answers the app's consent prompt from the keyboard: Allow
// once runs the command, Deny refuses it.
func consentPrompts(t *testing.T, d *desktopEnv, socket string, admin adminv1.AdminClient, device string) {
	t.Helper()
	for _, c := range []node.SharingChange{
		{Action: "enable", Name: "shell.exec"},
		{Action: "allow-command", Value: "/bin/echo"},
	} {
		if _, err := localapi.ChangeSharing(t.Context(), socket, c); err != nil {
			t.Fatalf("changing sharing (%s %s%s): %v", c.Action, c.Name, c.Value, err)
		}
	}
	waitFor(t, stepDeadline, "the gateway to see shell.exec on", func() bool { return capEnabled(t, admin, device, "shell.exec") })

	const title = "Allow shell.exec?"
	// invoke starts a call and returns where its result arrives.
	invoke := func() <-chan *adminv1.InvokeResponse {
		res := make(chan *adminv1.InvokeResponse, 1)
		go func() {
			resp, err := admin.Invoke(t.Context(), &adminv1.InvokeRequest{
				DeviceId: device, Capability: "shell.exec",
				ArgsJson:  []byte(`{"command":"/bin/echo","args":["consented"]}`),
				TimeoutMs: stepDeadline.Milliseconds(),
			})
			if err != nil {
				resp = &adminv1.InvokeResponse{ErrorCode: "rpc", ErrorMessage: err.Error()}
			}
			res <- resp
		}()
		return res
	}
	result := func(res <-chan *adminv1.InvokeResponse) *adminv1.InvokeResponse {
		t.Helper()
		select {
		case r := <-res:
			return r
		case <-time.After(stepDeadline):
			t.Fatalf("no result of shell.exec within %s of answering the prompt", stepDeadline)
		}
		return nil
	}

	// Allow once: the buttons are Deny, Allow once, Always allow.
	res := invoke()
	prompt := d.window(title)
	// There is no window manager to place it: move it off the main window.
	d.xdotool("windowmove", "--sync", prompt, "620", "0")
	d.screenshot("consent-prompt")
	d.pressClosing(prompt, title, "Tab", "Tab", "space")
	r := result(res)
	var out struct {
		ExitCode int    `json:"exit_code"`
		Stdout   string `json:"stdout"`
	}
	if !r.GetOk() {
		t.Fatalf("shell.exec after Allow once: %s: %s", r.GetErrorCode(), r.GetErrorMessage())
	}
	if err := json.Unmarshal(r.GetOutputJson(), &out); err != nil || out.ExitCode != 0 || out.Stdout != "consented\n" {
		t.Fatalf("shell.exec after Allow once: %+v, %v (output %s)", out, err, r.GetOutputJson())
	}

	// Deny: the first button.
	res = invoke()
	prompt = d.window(title)
	d.pressClosing(prompt, title, "Tab", "space")
	if r := result(res); r.GetOk() || r.GetErrorCode() != "denied" {
		t.Fatalf("shell.exec after Deny: ok=%v %s: %s", r.GetOk(), r.GetErrorCode(), r.GetErrorMessage())
	}
}

// headlessNodeName is the second node's name, as the app's request window
// and the gateway show it.
const headlessNodeName = "headless-test-node"

// pairSecondNode opens "Show pairing code…" in the main window (focus on
// clipboard.read), reads the QR code from a screenshot, pairs an in-process
// headless node with it, approves the request in the app's window, runs
// the node and waits until the gateway lists it online. It returns the
// node's device ID; the node runs until the test ends.
func pairSecondNode(t *testing.T, d *desktopEnv, win string, admin adminv1.AdminClient) string {
	t.Helper()
	d.press(win, "shift+Tab", "space")
	codeWin := d.window("Pairing code")
	d.xdotool("windowmove", "--sync", codeWin, "620", "0")
	// The code is made in the background: look until the screen shows one.
	var link string
	waitFor(t, stepDeadline, "a QR code on the screen", func() bool {
		img := d.screenshot("pairing-code")
		var err error
		link, err = qr.Decode(img)
		return err == nil
	})
	if !strings.HasPrefix(link, "palyra://") {
		t.Fatalf("the QR code on the screen is not a pairing link (%d bytes)", len(link))
	}
	// Close it from the keyboard: Copy link, New code, Close.
	d.pressClosing(codeWin, "Pairing code", "Tab", "Tab", "Tab", "space")

	secretDir := filepath.Join(t.TempDir(), "secrets")
	if err := os.Mkdir(secretDir, 0o700); err != nil {
		t.Fatal(err)
	}
	secrets, err := secretstore.NewFile(secretDir)
	if err != nil {
		t.Fatal(err)
	}
	other, err := node.New(node.Config{ConfigDir: t.TempDir(), Secrets: secrets, Name: headlessNodeName})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	type result struct {
		st  node.Status
		err error
	}
	paired := make(chan result, 1)
	go func() {
		st, err := other.Pair(ctx, node.PairOptions{Link: link})
		paired <- result{st, err}
	}()
	t.Cleanup(func() { cancel(); <-paired })

	// The request comes up in the app with the code the node shows.
	req := d.window("Pairing request")
	d.xdotool("windowmove", "--sync", req, "620", "0")
	waitFor(t, stepDeadline, "the headless node to wait for approval", func() bool {
		return other.Status().State == node.StatePending
	})
	code := other.Status().VerificationCode
	reqs, err := admin.ListPairingRequests(t.Context(), &adminv1.ListPairingRequestsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, r := range reqs.GetRequests() {
		found = found || r.GetState() == adminv1.PairingRequest_STATE_PENDING && r.GetName() == headlessNodeName && r.GetVerificationCode() == code
	}
	if code == "" || !found {
		t.Fatalf("no pending request from %s with the node's verification code: %v", headlessNodeName, reqs.GetRequests())
	}
	d.screenshot("pairing-request")

	// Approve from the keyboard: Reject, Approve.
	d.pressClosing(req, "Pairing request", "Tab", "Tab", "space")
	var res result
	select {
	case res = <-paired:
		paired <- res // for the cleanup
	case <-time.After(stepDeadline):
		t.Fatalf("the headless node's pairing did not end within %s of Approve", stepDeadline)
	}
	if res.err != nil || res.st.DeviceID == "" {
		t.Fatalf("pairing the headless node: %+v, %v", res.st, res.err)
	}
	devs, err := admin.ListDevices(t.Context(), &adminv1.ListDevicesRequest{})
	if err != nil || len(devs.GetDevices()) != 2 {
		t.Fatalf("devices after approving the headless node: %v, %v", devs, err)
	}

	ran := make(chan error, 1)
	go func() { ran <- other.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-ran })
	waitFor(t, stepDeadline, "the headless node online", func() bool {
		for _, n := range listNodes(t, admin) {
			if n.GetDeviceId() == res.st.DeviceID {
				return n.GetOnline() && n.GetName() == headlessNodeName
			}
		}
		return false
	})
	return res.st.DeviceID
}

func newDesktop(t *testing.T) *desktopEnv {
	t.Helper()
	d := newDisplay(t, "dbus-daemon", "gnome-keyring-daemon")
	d.bus = d.startBus()
	d.env = append(d.env, "DBUS_SESSION_BUS_ADDRESS="+d.bus)
	d.startKeyring()
	d.bin = buildDesktop(t, d.dir)
	return d
}

// newDisplay is a throwaway desktop with only its X server, and the
// private HOME and XDG directories; tools are the other commands the test
// needs.
func newDisplay(t *testing.T, tools ...string) *desktopEnv {
	t.Helper()
	for _, tool := range append([]string{"Xvfb", "import", "xdotool"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the desktop test needs xvfb, dbus, gnome-keyring, imagemagick and xdotool (make test installs them)", tool)
		}
	}
	dir, err := os.MkdirTemp("", "pdesk")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	d := &desktopEnv{t: t, dir: dir, closed: map[string]bool{}}
	home := filepath.Join(dir, "home")
	for _, sub := range []string{"", "data", "config", "cache", "run"} {
		if err := os.MkdirAll(filepath.Join(home, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	d.env = []string{
		"HOME=" + home, "XDG_DATA_HOME=" + filepath.Join(home, "data"), "XDG_CONFIG_HOME=" + filepath.Join(home, "config"),
		"XDG_CACHE_HOME=" + filepath.Join(home, "cache"), "XDG_RUNTIME_DIR=" + filepath.Join(home, "run"),
		"PATH=" + os.Getenv("PATH"), "LANG=C.UTF-8", "QUIC_GO_DISABLE_RECEIVE_BUFFER_WARNING=true",
	}
	d.display = d.startXvfb()
	d.env = append(d.env, "DISPLAY="+d.display)
	if err := os.MkdirAll(artifactDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// buildDesktop builds palyra-desktop with cgo.
func buildDesktop(t *testing.T, dir string) string {
	t.Helper()
	return goBuild(t, filepath.Join(dir, "palyra-desktop"), ".", true)
}

// goBuild builds the package pkg of this module into bin.
func goBuild(t *testing.T, bin, pkg string, cgo bool) string {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED="+map[bool]string{true: "1", false: "0"}[cgo])
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// background starts a helper process that lives until the test ends.
// A helper that exits before the test ends is reported with its output,
// since a test step that fails afterwards is usually its consequence.
func (d *desktopEnv) background(cmd *exec.Cmd) {
	d.t.Helper()
	d.startHelper(cmd, nil)
}

// startHelper starts cmd as background does. With started set, it waits
// (bounded) until started reports true, and returns false with cmd's
// output if cmd exits first: that exit is the caller's to handle, not
// reported.
func (d *desktopEnv) startHelper(cmd *exec.Cmd, started func() bool) (ok bool, output string) {
	d.t.Helper()
	ownGroup(cmd)
	var out syncBuffer
	if cmd.Stdout == nil {
		cmd.Stdout = &out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = &out
	}
	if err := cmd.Start(); err != nil {
		d.t.Fatalf("starting %s: %v", cmd.Path, err)
	}
	done := make(chan struct{})
	var ending, starting atomic.Bool
	starting.Store(started != nil)
	name := filepath.Base(cmd.Path)
	go func() {
		err := cmd.Wait()
		if !ending.Load() && !starting.Load() {
			d.t.Errorf("%s exited before the test ended (%v):\n%s", name, err, out.String())
		}
		close(done)
	}()
	d.t.Cleanup(func() {
		ending.Store(true)
		signalGroup(cmd.Process, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			signalGroup(cmd.Process, syscall.SIGKILL)
			<-done
		}
	})
	if started == nil {
		return true, ""
	}
	deadline := time.NewTimer(stepDeadline)
	defer deadline.Stop()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !started() {
		select {
		case <-done:
			return false, out.String()
		case <-deadline.C:
			d.t.Fatalf("%s did not start within %s:\n%s", name, stepDeadline, out.String())
		case <-tick.C:
		}
	}
	starting.Store(false)
	return true, ""
}

// startXvfb starts an X server and returns its display (-displayfd: the
// server picks a free display and says which once it is ready).
func (d *desktopEnv) startXvfb() string {
	r, w, err := os.Pipe()
	if err != nil {
		d.t.Fatal(err)
	}
	defer r.Close()
	cmd := exec.Command("Xvfb", "-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp")
	cmd.ExtraFiles = []*os.File{w}
	cmd.Env = d.env
	d.background(cmd)
	w.Close()
	return ":" + readLine(d.t, r, "Xvfb's display number")
}

// startBus starts a private session bus and returns its address.
func (d *desktopEnv) startBus() string {
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address=1")
	cmd.Env = d.env
	out, err := cmd.StdoutPipe()
	if err != nil {
		d.t.Fatal(err)
	}
	d.background(cmd)
	return readLine(d.t, out, "the session bus address")
}

// startKeyring starts gnome-keyring on the bus, unlocked, and waits until
// it owns the Secret Service name.
func (d *desktopEnv) startKeyring() {
	cmd := exec.Command("gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets")
	cmd.Env = d.env
	cmd.Stdin = strings.NewReader(keyringPassword)
	d.background(cmd)
	d.waitBusName("org.freedesktop.secrets", "gnome-keyring")
}

// waitBusName waits until name is owned on the test's bus; what owns it
// says who should.
func (d *desktopEnv) waitBusName(name, what string) {
	d.t.Helper()
	conn := d.busConn()
	waitFor(d.t, stepDeadline, what+" on the bus ("+name+")", func() bool { return hasBusName(conn, name) })
}

func readLine(t *testing.T, r interface{ Read([]byte) (int, error) }, what string) string {
	t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- strings.TrimSpace(s)
	}()
	select {
	case s := <-line:
		if s == "" {
			t.Fatalf("no %s", what)
		}
		return s
	case <-time.After(stepDeadline):
		t.Fatalf("no %s within %s", what, stepDeadline)
	}
	return ""
}

// appProcess is one run of palyra-desktop.
type appProcess struct {
	t       *testing.T
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
}

func (d *desktopEnv) start(name string, args ...string) *appProcess {
	d.t.Helper()
	cmd := exec.Command(d.bin, args...)
	cmd.Env = d.env
	return d.startCmd(name, cmd)
}

// startCmd starts cmd, a run of palyra-desktop, with its output in a log.
func (d *desktopEnv) startCmd(name string, cmd *exec.Cmd) *appProcess {
	d.t.Helper()
	logPath := filepath.Join(d.dir, name+".log")
	f, err := os.Create(logPath)
	if err != nil {
		d.t.Fatal(err)
	}
	// A new client may get the window IDs of one that quit: X hands out
	// the same ID range again.
	clear(d.closed)
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		d.t.Fatal(err)
	}
	f.Close()
	p := &appProcess{t: d.t, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	d.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		d.t.Logf("%s run of palyra-desktop:\n%s", name, p.log())
	})
	return p
}

func (p *appProcess) log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// stop asks the app to quit (SIGTERM) and expects a clean exit.
func (p *appProcess) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Fatalf("palyra-desktop exited with %v:\n%s", p.err, p.log())
		}
	case <-time.After(stepDeadline):
		p.t.Fatalf("palyra-desktop did not quit within %s of SIGTERM", stepDeadline)
	}
}

// waitState polls the agent's local API until it reports want.
func waitState(t *testing.T, socket string, want node.State, deadline time.Duration, p *appProcess) node.Status {
	t.Helper()
	var last node.Status
	var lastErr error
	ok := poll(deadline, func() bool {
		select {
		case <-p.done:
			t.Fatalf("palyra-desktop exited (%v):\n%s", p.err, p.log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		last, lastErr = localapi.Status(ctx, socket)
		return lastErr == nil && last.State == want
	})
	if !ok {
		t.Fatalf("the app's node is not %s after %s: %+v, %v\n%s", want, deadline, last, lastErr, p.log())
	}
	return last
}

func poll(deadline time.Duration, cond func() bool) bool {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	end := time.After(deadline)
	for !cond() {
		select {
		case <-tick.C:
		case <-end:
			return cond()
		}
	}
	return true
}

func waitFor(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	if !poll(deadline, cond) {
		t.Fatalf("timed out after %s waiting for %s", deadline, what)
	}
}

// window waits for a window with the exact title, other than those that
// closed before, and returns its ID.
func (d *desktopEnv) window(title string) string {
	d.t.Helper()
	var id string
	waitFor(d.t, stepDeadline, "window "+strconv.Quote(title), func() bool {
		ids, err := d.windows(title)
		if err != nil {
			return false
		}
		for _, w := range ids {
			if !d.closed[w] {
				id = w
			}
		}
		return id != ""
	})
	return id
}

// windows lists the visible windows with the exact title. An error is
// logged when it differs from the last one, so that a failure shows what
// the searches ran into without one line per poll.
func (d *desktopEnv) windows(title string) ([]string, error) {
	cmd := exec.Command("xdotool", "search", "--onlyvisible", "--name", "^"+regexp.QuoteMeta(title)+"$")
	cmd.Env = d.env
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	// xdotool search exits 1, saying nothing, when it finds nothing; an
	// X error on the way (a window destroyed while it looked) is a
	// failure, not an empty answer.
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 && len(out) == 0 && stderr.Len() == 0 {
		return nil, nil
	}
	if err != nil {
		err = fmt.Errorf("xdotool search for %q: %v: %s", title, err, stderr.String())
		if err.Error() != d.lastSearchErr {
			d.lastSearchErr = err.Error()
			d.t.Log(err)
		}
		return nil, err
	}
	return strings.Fields(string(out)), nil
}

// press focuses window win and types keys into it. The keys go to
// whichever window has the focus, as a person's would: with --window,
// xdotool sends a key to a window that has lost the focus as a synthetic
// event, and for a key that closes its window that is the release, which
// then never reaches the X server, leaving the key held down there.
func (d *desktopEnv) press(win string, keys ...string) {
	d.t.Helper()
	d.xdotool("windowfocus", "--sync", win)
	d.xdotool(append([]string{"key"}, keys...)...)
}

// pressClosing types keys into window win, the last of which closes it,
// and waits until that window is gone.
func (d *desktopEnv) pressClosing(win, title string, keys ...string) {
	d.t.Helper()
	d.press(win, keys...)
	waitFor(d.t, stepDeadline, fmt.Sprintf("window %s (%q) to close after %v", win, title, keys), func() bool {
		ids, err := d.windows(title)
		if err != nil {
			return false
		}
		return !slices.Contains(ids, win)
	})
	d.closed[win] = true
}

func (d *desktopEnv) xdotool(args ...string) {
	d.t.Helper()
	cmd := exec.Command("xdotool", args...)
	cmd.Env = d.env
	if out, err := cmd.CombinedOutput(); err != nil {
		d.t.Fatalf("xdotool %v: %v\n%s", args, err, out)
	}
}

// screenshot saves the whole screen as artifacts/desktop-app/name.png once
// the screen has settled (two captures in a row alike), and returns it.
func (d *desktopEnv) screenshot(name string) image.Image {
	d.t.Helper()
	path := filepath.Join(artifactDir, name+".png")
	var prev []byte
	waitFor(d.t, stepDeadline, "the screen to settle for "+name, func() bool {
		cmd := exec.Command("import", "-window", "root", "png:"+path)
		cmd.Env = d.env
		if out, err := cmd.CombinedOutput(); err != nil {
			d.t.Fatalf("taking a screenshot: %v\n%s", err, out)
		}
		cur, err := os.ReadFile(path)
		if err != nil {
			d.t.Fatal(err)
		}
		same := prev != nil && string(prev) == string(cur)
		prev = cur
		return same
	})
	d.t.Logf("screenshot %s", path)
	img, err := png.Decode(bytes.NewReader(prev))
	if err != nil {
		d.t.Fatalf("reading screenshot %s: %v", path, err)
	}
	return img
}

func adminClient(t *testing.T, socket string) adminv1.AdminClient {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return adminv1.NewAdminClient(conn)
}

func listNodes(t *testing.T, admin adminv1.AdminClient) []*adminv1.Node {
	t.Helper()
	resp, err := admin.ListNodes(t.Context(), &adminv1.ListNodesRequest{})
	if err != nil {
		t.Fatalf("listing nodes: %v", err)
	}
	return resp.GetNodes()
}

// capEnabled is whether the gateway sees capability name on for device.
func capEnabled(t *testing.T, admin adminv1.AdminClient, device, name string) bool {
	t.Helper()
	resp, err := admin.DescribeNode(t.Context(), &adminv1.DeviceRequest{DeviceId: device})
	if err != nil {
		t.Fatalf("describing node %s: %v", device, err)
	}
	for _, c := range resp.GetCapabilities() {
		if c.GetName() == name {
			return c.GetEnabled()
		}
	}
	t.Fatalf("the gateway lists no %s for %s: %v", name, device, resp.GetCapabilities())
	return false
}

func TestCheckDisplay(t *testing.T) {
	for _, tc := range []struct {
		goos string
		env  map[string]string
		ok   bool
	}{
		{"linux", nil, false},
		{"linux", map[string]string{"DISPLAY": ":0"}, true},
		// The toolkit draws through X11 (XWayland on Wayland desktops).
		{"linux", map[string]string{"WAYLAND_DISPLAY": "wayland-0"}, false},
		{"freebsd", nil, false},
		{"darwin", nil, true},
		{"windows", nil, true},
	} {
		err := checkDisplay(tc.goos, func(k string) string { return tc.env[k] })
		if (err == nil) != tc.ok {
			t.Errorf("%s %v: %v", tc.goos, tc.env, err)
		}
		if err != nil && !strings.Contains(err.Error(), "--headless-gateway") {
			t.Errorf("the error does not say what to run instead: %v", err)
		}
	}
}

// syncBuffer is a buffer a helper process writes while the test reads.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
