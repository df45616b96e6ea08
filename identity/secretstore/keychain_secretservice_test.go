//go:build linux

package secretstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// These tests go through the real Secret Service: gnome-keyring on a private
// D-Bus session bus, with a throwaway HOME, so the keyring of the person
// running them is never touched.
//
// godbus connects to the session bus once per process and caches the
// connection, so each scenario runs in its own process: the test binary
// re-executes itself, under dbus-run-session, running only
// TestKeychainHelperProcess with the scenario named in the environment. The
// helper checks what it can itself and writes a report that the parent test
// checks again.

const (
	helperScenarioEnv  = "PALYRA_SECRETSTORE_HELPER"
	helperReportEnv    = "PALYRA_SECRETSTORE_HELPER_REPORT"
	helperParentBusEnv = "PALYRA_SECRETSTORE_PARENT_BUS"
	keyringPasswordEnv = "PALYRA_TEST_KEYRING_PASSWORD"
)

// keyringScript runs inside dbus-run-session: it starts gnome-keyring's
// secrets component with a login collection unlocked by a throwaway password,
// then replaces itself with the test binary ($0) and its arguments.
const keyringScript = `printf %s "$` + keyringPasswordEnv + `" | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec "$0" "$@"`

const (
	secretsBusName   = "org.freedesktop.secrets"
	loginCollection  = dbus.ObjectPath("/org/freedesktop/secrets/collection/login")
	busNameDeadline  = 10 * time.Second // for gnome-keyring to appear on the bus
	helperDeadline   = 90 * time.Second // for a whole helper process, after which it is killed
	helperTimeout    = 60 * time.Second // the helper's own -test.timeout, so it dumps its goroutines first
	lockedTimeout    = 2 * time.Second  // Keychain timeout in the locked scenarios
	schedulingMargin = time.Second      // allowed beyond a timeout on a busy machine
)

// helperReport is what a helper process found, written as JSON.
type helperReport struct {
	Scenario string
	Timeout  time.Duration
	Calls    []helperCall
}

// helperCall records one Store call whose outcome the parent checks.
type helperCall struct {
	Op          string
	Err         string
	Unavailable bool
	NotFound    bool
	TooLarge    bool
	Elapsed     time.Duration
}

func (r *helperReport) record(op string, start time.Time, err error) helperCall {
	c := helperCall{
		Op:          op,
		Unavailable: errors.Is(err, ErrUnavailable),
		NotFound:    errors.Is(err, ErrNotFound),
		TooLarge:    errors.Is(err, ErrTooLarge),
		Elapsed:     time.Since(start),
	}
	if err != nil {
		c.Err = err.Error()
	}
	r.Calls = append(r.Calls, c)
	return c
}

func (r helperReport) call(t *testing.T, op string) helperCall {
	t.Helper()
	for _, c := range r.Calls {
		if c.Op == op {
			return c
		}
	}
	t.Fatalf("helper report for %s has no call %q: %+v", r.Scenario, op, r.Calls)
	return helperCall{}
}

func TestKeychainSecretService(t *testing.T) {
	var missing []string
	for _, tool := range []string{"dbus-run-session", "gnome-keyring-daemon", "secret-tool"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s not found: the keychain tests need a real Secret Service; install the Debian packages gnome-keyring dbus-x11 libsecret-tools (make test does that)",
			strings.Join(missing, ", "))
	}

	scenarios := []struct {
		name  string
		check func(t *testing.T, r helperReport)
	}{
		{"unlocked", func(t *testing.T, r helperReport) {
			if c := r.call(t, "get-missing"); !c.NotFound {
				t.Errorf("Get of a missing item: %q, want ErrNotFound", c.Err)
			}
			if c := r.call(t, "set-too-large"); !c.TooLarge {
				t.Errorf("Set over MaxItemSize: %q, want ErrTooLarge", c.Err)
			}
			if c := r.call(t, "set-largest"); c.Err != "" {
				t.Errorf("Set of MaxValueSize bytes: %q, want success", c.Err)
			}
		}},
		{"locked", checkLocked},
		{"locked-silent-prompter", checkLocked},
		{"absent", func(t *testing.T, r helperReport) {
			for _, op := range []string{"get", "set", "delete"} {
				c := r.call(t, op)
				if !c.Unavailable || !strings.Contains(c.Err, "OS keychain unavailable") || !strings.Contains(c.Err, "--secret-store file") {
					t.Errorf("%s without a session bus: %q, want ErrUnavailable with a hint", op, c.Err)
				}
				// It must fail because there is no bus, at once, not
				// by running into the deadline.
				if strings.Contains(c.Err, "no answer within") || c.Elapsed > r.Timeout/2 {
					t.Errorf("%s without a session bus took %s (%q), want a quick failure", op, c.Elapsed, c.Err)
				}
			}
		}},
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			r := runHelper(t, sc.name)
			for _, c := range r.Calls {
				t.Logf("%s: %s in %s: %s", r.Scenario, c.Op, c.Elapsed.Round(time.Millisecond), c.Err)
			}
			sc.check(t, r)
		})
	}
}

// checkLocked: with the login collection locked, every call fails with
// ErrUnavailable by the deadline, whether gnome-keyring gives up on the
// password prompt (no prompter can show it) or waits for it for ever.
func checkLocked(t *testing.T, r helperReport) {
	for _, op := range []string{"get-locked", "set-locked", "delete-locked"} {
		c := r.call(t, op)
		if !c.Unavailable || !strings.Contains(c.Err, "unlocked") {
			t.Errorf("%s: %q, want ErrUnavailable asking whether the keychain is unlocked", op, c.Err)
		}
		if c.Elapsed > r.Timeout+schedulingMargin {
			t.Errorf("%s took %s, over the %s timeout", op, c.Elapsed, r.Timeout)
		}
	}
	if r.Scenario == "locked-silent-prompter" {
		if c := r.call(t, "get-locked"); !strings.Contains(c.Err, "no answer within") {
			t.Errorf("get-locked with a prompter that never answers: %q, want the deadline to end it", c.Err)
		}
	}
}

// runHelper runs TestKeychainHelperProcess for scenario in a child process
// with its own HOME and XDG directories and, except for "absent", its own
// D-Bus session with gnome-keyring, and returns its report.
func runHelper(t *testing.T, scenario string) helperReport {
	t.Helper()
	dir := t.TempDir()
	report := filepath.Join(dir, "report.json")

	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case k == "HOME", k == "DBUS_SESSION_BUS_ADDRESS", k == "DISPLAY", k == "WAYLAND_DISPLAY",
			strings.HasPrefix(k, "XDG_"), strings.HasPrefix(k, "PALYRA_"):
			// Replaced below, or removed so no prompt can reach a real
			// display and nothing can reach a real session.
		default:
			env = append(env, kv)
		}
	}
	for k, sub := range map[string]string{
		"HOME": "home", "XDG_DATA_HOME": "data", "XDG_CONFIG_HOME": "config",
		"XDG_CACHE_HOME": "cache", "XDG_RUNTIME_DIR": "run",
	} {
		p := filepath.Join(dir, sub)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		env = append(env, k+"="+p)
	}
	env = append(env,
		helperScenarioEnv+"="+scenario,
		helperReportEnv+"="+report,
		helperParentBusEnv+"="+os.Getenv("DBUS_SESSION_BUS_ADDRESS"),
		keyringPasswordEnv+"=palyra-test-only",
	)

	ctx, cancel := context.WithTimeout(t.Context(), helperDeadline)
	defer cancel()
	args := []string{"-test.run=^TestKeychainHelperProcess$", "-test.count=1", "-test.v", "-test.timeout=" + helperTimeout.String()}
	var cmd *exec.Cmd
	if scenario == "absent" {
		// A bus address that names nothing: what a machine without a
		// session bus looks like to go-keyring, with DISPLAY unset so
		// nothing autolaunches one.
		env = append(env, "DBUS_SESSION_BUS_ADDRESS=unix:path="+filepath.Join(dir, "no-such-bus"))
		cmd = exec.CommandContext(ctx, os.Args[0], args...)
	} else {
		cmd = exec.CommandContext(ctx, "dbus-run-session", append([]string{"--", "sh", "-c", keyringScript, os.Args[0]}, args...)...)
	}
	cmd.Env = env
	// Output goes to a file rather than a pipe: gnome-keyring-daemon
	// detaches and may keep inherited descriptors open for a moment, and
	// Wait would block on a pipe until it exits.
	outPath := filepath.Join(dir, "output")
	out, err := os.Create(outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second

	start := time.Now()
	runErr := cmd.Run()
	output, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("helper process for %s ran for %s", scenario, time.Since(start).Round(time.Millisecond))
	if runErr != nil {
		t.Fatalf("helper process for %s failed: %v\n%s", scenario, runErr, output)
	}
	if !bytes.Contains(output, []byte("--- PASS: TestKeychainHelperProcess")) {
		t.Fatalf("helper process for %s did not pass TestKeychainHelperProcess:\n%s", scenario, output)
	}
	data, err := os.ReadFile(report)
	if err != nil {
		t.Fatalf("helper process for %s wrote no report: %v\n%s", scenario, err, output)
	}
	var r helperReport
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("helper report for %s: %v", scenario, err)
	}
	if r.Scenario != scenario {
		t.Fatalf("helper report is for scenario %q, want %q", r.Scenario, scenario)
	}
	return r
}

// TestKeychainHelperProcess is not a test on its own: it runs a scenario for
// TestKeychainSecretService in a child process, and does nothing (and passes)
// when run directly.
func TestKeychainHelperProcess(t *testing.T) {
	scenario := os.Getenv(helperScenarioEnv)
	if scenario == "" {
		return
	}
	if parent := os.Getenv(helperParentBusEnv); parent != "" && parent == os.Getenv("DBUS_SESSION_BUS_ADDRESS") {
		t.Fatalf("refusing to run on the caller's session bus %s: the scenario must run on a private one", parent)
	}
	r := &helperReport{Scenario: scenario}
	defer func() {
		data, err := json.Marshal(r)
		if err == nil {
			err = os.WriteFile(os.Getenv(helperReportEnv), data, 0o600)
		}
		if err != nil {
			t.Errorf("writing report: %v", err)
		}
	}()
	switch scenario {
	case "unlocked":
		helperUnlocked(t, r)
	case "locked":
		helperLocked(t, r, false)
	case "locked-silent-prompter":
		helperLocked(t, r, true)
	case "absent":
		helperAbsent(t, r)
	default:
		t.Fatalf("unknown scenario %q", scenario)
	}
}

func helperUnlocked(t *testing.T, r *helperReport) {
	conn := connectTestBus(t)
	waitForName(t, conn, secretsBusName)

	r.Timeout = DefaultKeychainTimeout
	a := newHelperKeychain(t, "gw-a", r.Timeout)
	b := newHelperKeychain(t, "gw-b", r.Timeout)
	value := allBytes()

	if err := a.Set("device-key", value); err != nil {
		t.Fatalf("Set: %v", err)
	}
	// Look the item up with libsecret, by the attributes go-keyring
	// writes on Linux (service, username), to show it really is in the
	// Secret Service and holds the base64 of the value.
	if got, ok := secretToolLookup(t, "palyra/gw-a", "device-key"); !ok || got != base64.StdEncoding.EncodeToString(value) {
		t.Errorf("secret-tool lookup = %q, %v; want the base64 of the value", got, ok)
	}
	if got, err := a.Get("device-key"); err != nil || !bytes.Equal(got, value) {
		t.Errorf("Get = %x, %v; want %x", got, err, value)
	}

	// Two profiles hold different values under the same name.
	if err := b.Set("device-key", []byte("profile b")); err != nil {
		t.Fatalf("Set in profile gw-b: %v", err)
	}
	if got, err := b.Get("device-key"); err != nil || string(got) != "profile b" {
		t.Errorf("profile gw-b Get = %q, %v; want %q", got, err, "profile b")
	}
	if got, err := a.Get("device-key"); err != nil || !bytes.Equal(got, value) {
		t.Errorf("profile gw-a Get after writing gw-b = %x, %v; want its own value", got, err)
	}

	// Overwriting replaces the item rather than adding a second one.
	if err := a.Set("device-key", []byte("replaced")); err != nil {
		t.Fatalf("Set over an existing item: %v", err)
	}
	if got, err := a.Get("device-key"); err != nil || string(got) != "replaced" {
		t.Errorf("Get after overwrite = %q, %v; want replaced", got, err)
	}
	if n := secretToolCount(t, "palyra/gw-a", "device-key"); n != 1 {
		t.Errorf("Secret Service holds %d items for gw-a/device-key after overwrite, want 1", n)
	}

	start := time.Now()
	_, err := a.Get("device-cert")
	if c := r.record("get-missing", start, err); !c.NotFound {
		t.Errorf("Get of a missing item: %v, want ErrNotFound", err)
	}

	// One byte over: refused before anything is written.
	start = time.Now()
	err = a.Set("big", bytes.Repeat([]byte{0xa5}, MaxValueSize+1))
	if c := r.record("set-too-large", start, err); !c.TooLarge {
		t.Errorf("Set of MaxValueSize+1 bytes: %v, want ErrTooLarge", err)
	}
	if _, ok := secretToolLookup(t, "palyra/gw-a", "big"); ok {
		t.Errorf("a refused Set left an item in the Secret Service")
	}
	if _, err := a.Get("big"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after a refused Set: %v, want ErrNotFound", err)
	}

	// The largest value that fits: exactly MaxItemSize as stored.
	largest := bytes.Repeat([]byte{0x5a, 0x00, 0xff}, MaxValueSize/3)
	start = time.Now()
	err = a.Set("big", largest)
	if c := r.record("set-largest", start, err); c.Err != "" {
		t.Fatalf("Set of MaxValueSize bytes: %v", err)
	}
	if got, ok := secretToolLookup(t, "palyra/gw-a", "big"); !ok || len(got) != MaxItemSize {
		t.Errorf("secret-tool lookup of the largest item: %d bytes, %v; want %d", len(got), ok, MaxItemSize)
	}
	if got, err := a.Get("big"); err != nil || !bytes.Equal(got, largest) {
		t.Errorf("Get of the largest item = %d bytes, %v", len(got), err)
	}

	if err := a.Delete("device-key"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := a.Get("device-key"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if _, ok := secretToolLookup(t, "palyra/gw-a", "device-key"); ok {
		t.Errorf("secret-tool still finds the deleted item")
	}
	if err := a.Delete("device-key"); err != nil {
		t.Errorf("Delete of a missing item: %v, want nil", err)
	}
	if got, err := b.Get("device-key"); err != nil || string(got) != "profile b" {
		t.Errorf("deleting from gw-a touched gw-b: %q, %v", got, err)
	}
}

// helperLocked stores an item, locks the login collection and checks that
// calls fail with ErrUnavailable within the timeout. With silentPrompter the
// helper owns the prompter's bus name and accepts the prompt without ever
// showing it, as a prompt on a screen nobody watches would: gnome-keyring
// then waits for ever, and only the deadline ends the call.
func helperLocked(t *testing.T, r *helperReport, silentPrompter bool) {
	conn := connectTestBus(t)
	waitForName(t, conn, secretsBusName)

	r.Timeout = lockedTimeout
	k := newHelperKeychain(t, "locked", r.Timeout)
	if err := k.Set("device-key", []byte("v")); err != nil {
		t.Fatalf("Set while unlocked: %v", err)
	}
	if silentPrompter {
		startSilentPrompter(t, conn)
	}
	lockCollection(t, conn, loginCollection)

	for _, op := range []struct {
		name string
		call func() error
	}{
		{"get-locked", func() error { _, err := k.Get("device-key"); return err }},
		{"set-locked", func() error { return k.Set("device-key", []byte("w")) }},
		{"delete-locked", func() error { return k.Delete("device-key") }},
	} {
		start := time.Now()
		err := op.call()
		c := r.record(op.name, start, err)
		if !c.Unavailable {
			t.Errorf("%s: %v, want ErrUnavailable", op.name, err)
		}
		if c.Elapsed > r.Timeout+schedulingMargin {
			t.Errorf("%s took %s, over the %s timeout", op.name, c.Elapsed, r.Timeout)
		}
	}
}

func helperAbsent(t *testing.T, r *helperReport) {
	r.Timeout = DefaultKeychainTimeout
	k := newHelperKeychain(t, "absent", r.Timeout)
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"get", func() error { _, err := k.Get("device-key"); return err }},
		{"set", func() error { return k.Set("device-key", []byte("v")) }},
		{"delete", func() error { return k.Delete("device-key") }},
	} {
		start := time.Now()
		err := op.call()
		if c := r.record(op.name, start, err); !c.Unavailable {
			t.Errorf("%s without a session bus: %v, want ErrUnavailable", op.name, err)
		}
	}
}

func newHelperKeychain(t *testing.T, profile string, timeout time.Duration) *Keychain {
	t.Helper()
	k, err := NewKeychain(KeychainOptions{Profile: profile, Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// connectTestBus opens the helper's own connection to the session bus,
// separate from the shared one go-keyring uses, for setup and inspection.
func connectTestBus(t *testing.T) *dbus.Conn {
	t.Helper()
	conn, err := dbus.ConnectSessionBus()
	if err != nil {
		t.Fatalf("connecting to the private session bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// waitForName returns once name has an owner on the bus. gnome-keyring
// --unlock normally returns after claiming it; the wait covers a daemon that
// is slower to register, watching NameOwnerChanged up to a deadline.
func waitForName(t *testing.T, conn *dbus.Conn, name string) {
	t.Helper()
	signals := make(chan *dbus.Signal, 16)
	conn.Signal(signals)
	defer conn.RemoveSignal(signals)
	// Subscribe before asking, so an owner that appears in between is seen.
	if err := conn.AddMatchSignal(
		dbus.WithMatchInterface("org.freedesktop.DBus"),
		dbus.WithMatchMember("NameOwnerChanged"),
		dbus.WithMatchArg(0, name),
	); err != nil {
		t.Fatalf("watching for %s: %v", name, err)
	}
	var has bool
	if err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has); err != nil {
		t.Fatalf("asking for %s: %v", name, err)
	}
	if has {
		return
	}
	timer := time.NewTimer(busNameDeadline)
	defer timer.Stop()
	for {
		select {
		case s := <-signals:
			if s.Name == "org.freedesktop.DBus.NameOwnerChanged" && len(s.Body) == 3 && s.Body[0] == name && s.Body[2] != "" {
				return
			}
		case <-timer.C:
			t.Fatalf("%s did not appear on the session bus within %s", name, busNameDeadline)
		}
	}
}

// lockCollection locks a collection through the Secret Service API.
// (secret-tool lock crashes in libsecret 0.20.5.)
func lockCollection(t *testing.T, conn *dbus.Conn, collection dbus.ObjectPath) {
	t.Helper()
	var locked []dbus.ObjectPath
	var prompt dbus.ObjectPath
	err := conn.Object(secretsBusName, "/org/freedesktop/secrets").
		Call("org.freedesktop.Secret.Service.Lock", 0, []dbus.ObjectPath{collection}).
		Store(&locked, &prompt)
	if err != nil {
		t.Fatalf("locking %s: %v", collection, err)
	}
	if prompt != "/" {
		t.Fatalf("locking %s asked for prompt %s, want none", collection, prompt)
	}
	v, err := conn.Object(secretsBusName, collection).GetProperty("org.freedesktop.Secret.Collection.Locked")
	if err != nil {
		t.Fatalf("reading whether %s is locked: %v", collection, err)
	}
	if isLocked, ok := v.Value().(bool); !ok || !isLocked {
		t.Fatalf("%s reports Locked = %v after Lock", collection, v)
	}
}

// startSilentPrompter claims the bus name gnome-keyring asks to show password
// prompts (gcr's system prompter) and accepts every prompt without answering
// it.
func startSilentPrompter(t *testing.T, conn *dbus.Conn) {
	t.Helper()
	const path = dbus.ObjectPath("/org/gnome/keyring/Prompter")
	const iface = "org.gnome.keyring.internal.Prompter"
	methods := map[string]any{
		"BeginPrompting": func(callback dbus.ObjectPath) *dbus.Error { return nil },
		"PerformPrompt": func(callback dbus.ObjectPath, kind string, properties map[string]dbus.Variant, exchange string) *dbus.Error {
			return nil
		},
		"StopPrompting": func(callback dbus.ObjectPath) *dbus.Error { return nil },
	}
	if err := conn.ExportMethodTable(methods, path, iface); err != nil {
		t.Fatalf("exporting the prompter: %v", err)
	}
	reply, err := conn.RequestName("org.gnome.keyring.SystemPrompter", dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("claiming the prompter's bus name: reply %v, %v", reply, err)
	}
}

// secretToolLookup looks an item up with libsecret's secret-tool, by the
// attributes go-keyring sets on Linux. ok is false when there is none.
func secretToolLookup(t *testing.T, service, user string) (secret string, ok bool) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), "secret-tool", "lookup", "service", service, "username", user)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var exitErr *exec.ExitError
	switch {
	case err == nil:
		return strings.TrimSuffix(string(out), "\n"), true
	case errors.As(err, &exitErr) && exitErr.ExitCode() == 1 && len(out) == 0:
		return "", false
	default:
		t.Fatalf("secret-tool lookup: %v: %s", err, stderr.Bytes())
		return "", false
	}
}

// secretToolCount counts the Secret Service items with go-keyring's
// attributes for service and user.
func secretToolCount(t *testing.T, service, user string) int {
	t.Helper()
	out, err := exec.CommandContext(t.Context(), "secret-tool", "search", "--all", "service", service, "username", user).CombinedOutput()
	if err != nil {
		t.Fatalf("secret-tool search: %v: %s", err, out)
	}
	n := 0
	for line := range strings.Lines(string(out)) {
		if strings.HasPrefix(line, "[") {
			n++
		}
	}
	return n
}
