package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/syncbuf"
	"github.com/palyra/palyra-go/node"
)

// doctor runs `palyra doctor` in-process.
func (c *cli) doctor(extra map[string]string, args ...string) (int, string, string) {
	c.t.Helper()
	return c.run(extra, "", append([]string{"doctor"}, args...)...)
}

// doctorJSON runs doctor --json and returns its results by check name.
func (c *cli) doctorJSON(extra map[string]string, args ...string) (int, map[string]checkResult) {
	c.t.Helper()
	code, out, errOut := c.doctor(extra, append([]string{"--json"}, args...)...)
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		c.t.Fatalf("doctor --json: exit %d, output is not a JSON array: %v\n%s\n%s", code, err, out, errOut)
	}
	byCheck := map[string]checkResult{}
	for _, r := range raw {
		for _, k := range []string{"check", "status", "detail"} {
			if _, ok := r[k].(string); !ok {
				c.t.Fatalf("doctor --json: %q missing or not a string in %v", k, r)
			}
		}
		res := checkResult{Check: r["check"].(string), Status: r["status"].(string), Detail: r["detail"].(string)}
		if res.Status != statusOK && res.Status != statusWarn && res.Status != statusFail {
			c.t.Errorf("doctor --json: status %q", res.Status)
		}
		if _, dup := byCheck[res.Check]; dup {
			c.t.Errorf("doctor --json: check %q reported twice", res.Check)
		}
		byCheck[res.Check] = res
	}
	if errOut != "" {
		c.t.Errorf("doctor --json wrote to stderr: %s", errOut)
	}
	return code, byCheck
}

// pairNode pairs a node (file secret store, own config dir) with the
// gateway at addr and returns its environment.
func (c *cli) pairNode(addr string) map[string]string {
	c.t.Helper()
	return c.pairAs(addr, "doctor-laptop")
}

// pairAs is pairNode for a device named name.
func (c *cli) pairAs(addr, name string) map[string]string {
	c.t.Helper()
	var code struct{ PIN string }
	c.mustJSON(&code, "pairing", "code", "--auto-approve", "--json")
	nodeEnv := map[string]string{"PALYRA_CONFIG_DIR": filepath.Join(c.t.TempDir(), "node")}
	if rc, _, errOut := c.run(nodeEnv, code.PIN+"\n", "node", "pair", "--gateway", addr, "--pin", "-", "--name", name); rc != 0 {
		c.t.Fatalf("node pair: exit %d: %s", rc, errOut)
	}
	return nodeEnv
}

// wantStatuses checks the status of each named check, and that no other
// check failed.
func wantStatuses(t *testing.T, got map[string]checkResult, want map[string]string) {
	t.Helper()
	for check, status := range want {
		r, ok := got[check]
		if !ok {
			t.Errorf("no %q check in %v", check, got)
			continue
		}
		if r.Status != status {
			t.Errorf("%s: %s (%s), want %s", check, r.Status, r.Detail, status)
		}
	}
	for check, r := range got {
		if _, ok := want[check]; !ok && r.Status == statusFail {
			t.Errorf("unexpected failure: %s: %s", check, r.Detail)
		}
	}
}

func mustContain(t *testing.T, r checkResult, parts ...string) {
	t.Helper()
	for _, p := range parts {
		if !strings.Contains(r.Detail, p) {
			t.Errorf("%s: %q does not mention %q", r.Check, r.Detail, p)
		}
	}
}

// lineRE is the form of every result line doctor prints for people. The
// check ends at the first ": " (an address's colon has no space after it).
var lineRE = regexp.MustCompile(`^(ok  |warn|FAIL)  [^ ][^\n]*?: \S.*$`)

// checkLines checks doctor's text output: result lines, a blank line and
// a summary.
func checkLines(t *testing.T, out, summary string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) < 3 || lines[len(lines)-2] != "" || lines[len(lines)-1] != summary {
		t.Fatalf("doctor output does not end in a blank line and %q:\n%s", summary, out)
	}
	for _, l := range lines[:len(lines)-2] {
		if !lineRE.MatchString(l) {
			t.Errorf("doctor line %q is not `ok|warn|FAIL  check: detail`", l)
		}
	}
}

// TestDoctorHealthyNode: a paired, running node with its gateway up passes
// every check; the file secret store gets its warning.
func TestDoctorHealthyNode(t *testing.T) {
	c := newCLI(t)
	addr := c.startGateway()
	nodeEnv := c.pairNode(addr)
	c.background(nodeEnv, "connected to ", "node", "run")

	code, got := c.doctorJSON(nodeEnv)
	if code != 0 {
		t.Fatalf("doctor: exit %d: %v", code, got)
	}
	tcp, udp := "gateway "+addr+" over TCP", "gateway "+addr+" over UDP"
	wantStatuses(t, got, map[string]string{
		"secret store": statusWarn,
		"config dir":   statusOK,
		"node.json":    statusOK,
		"sharing.json": statusOK,
		"identity":     statusOK,
		"certificate":  statusOK,
		tcp:            statusOK,
		udp:            statusOK,
		"local node":   statusOK,
	})
	if len(got) != 9 {
		t.Errorf("doctor reported %d checks, want 9: %v", len(got), got)
	}
	mustContain(t, got["secret store"], "--secret-store file", "OS keychain")
	mustContain(t, got["node.json"], addr)
	mustContain(t, got["identity"], "doctor-laptop")
	mustContain(t, got["certificate"], "valid until", "pinned gateway CA")
	mustContain(t, got[tcp], "verified against the pinned CA", "for 127.0.0.1")
	mustContain(t, got[udp], "asked for the device certificate", "verified against the pinned CA")
	mustContain(t, got["local node"], "running, connected to")

	// For people: one line per check, progress on stderr, a summary.
	code, out, errOut := c.doctor(nodeEnv)
	if code != 0 {
		t.Fatalf("doctor: exit %d\n%s%s", code, out, errOut)
	}
	checkLines(t, out, "no failures, 1 warning")
	if !strings.Contains(out, "ok    "+tcp+": ") || !strings.Contains(out, "warn  secret store: ") {
		t.Errorf("doctor output:\n%s", out)
	}
	if !strings.Contains(errOut, "probing 1 gateway address over TCP and UDP") {
		t.Errorf("no progress on stderr: %q", errOut)
	}

	// The probes left the node's own session alone, and the throwaway
	// item is gone.
	var st map[string]any
	c.mustJSON(&st, "node", "status", "--json", "--config-dir", nodeEnv["PALYRA_CONFIG_DIR"])
	if st["state"] != "connected" {
		t.Errorf("node state after doctor: %v", st)
	}
	if _, err := os.Stat(filepath.Join(nodeEnv["PALYRA_CONFIG_DIR"], "secrets", storeItemProbe)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("probe item left behind: %v", err)
	}
}

// TestDoctorGatewayDown: the gateway a paired node knows is stopped, so
// both probes fail in words a person can act on, and doctor exits 1.
func TestDoctorGatewayDown(t *testing.T) {
	c := newCLI(t)
	addr, stop := c.startStoppableGateway()
	nodeEnv := c.pairNode(addr)
	stop()

	code, out, errOut := c.doctor(nodeEnv, "--timeout", "1s")
	if code != 1 {
		t.Fatalf("doctor with the gateway down: exit %d\n%s%s", code, out, errOut)
	}
	checkLines(t, out, "2 checks failed, 2 warnings")
	for _, want := range []string{
		"FAIL  gateway " + addr + " over TCP: connection refused: nothing listens on TCP port",
		"is the gateway running?",
		"FAIL  gateway " + addr + " over UDP: no answer over UDP (QUIC) within 1s",
		"need the gRPC fallback over TCP",
		"warn  local node: not running",
		"ok    certificate: valid until",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(errOut, "palyra:") {
		t.Errorf("doctor printed an error besides its report: %s", errOut)
	}
}

// TestDoctorLocalProblems covers machines with no gateway to probe: not
// paired, loose permissions, a broken settings file, no keychain.
func TestDoctorLocalProblems(t *testing.T) {
	noBus := "unix:path=" + filepath.Join(t.TempDir(), "no-bus")
	for _, tc := range []struct {
		name  string
		setup func(dir string)
		env   map[string]string
		code  int
		want  map[string]string
		says  map[string]string
	}{{
		name: "never paired",
		code: 0,
		want: map[string]string{"secret store": statusWarn, "config dir": statusWarn, "identity": statusWarn, "local node": statusOK},
		says: map[string]string{"config dir": "does not exist: not paired", "identity": "not paired", "secret store": "not created yet"},
	}, {
		name:  "empty config dir",
		setup: func(dir string) { mkdir(t, dir, 0o700) },
		code:  0,
		want:  map[string]string{"config dir": statusOK, "node.json": statusWarn, "sharing.json": statusOK, "identity": statusWarn},
		says:  map[string]string{"node.json": "not paired"},
	}, {
		name:  "loose config dir",
		setup: func(dir string) { mkdir(t, dir, 0o755) },
		code:  0,
		want:  map[string]string{"config dir": statusWarn},
		says:  map[string]string{"config dir": "chmod 700"},
	}, {
		name: "broken sharing.json",
		setup: func(dir string) {
			mkdir(t, dir, 0o700)
			if err := os.WriteFile(filepath.Join(dir, "sharing.json"), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		},
		code: 1,
		want: map[string]string{"sharing.json": statusFail},
		says: map[string]string{"sharing.json": "fixed or removed"},
	}, {
		name: "no keychain",
		env:  map[string]string{"PALYRA_SECRET_STORE": "keychain"},
		code: 1,
		want: map[string]string{"secret store": statusFail, "identity": statusFail},
		says: map[string]string{"secret store": "--secret-store file"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.env["PALYRA_SECRET_STORE"] == "keychain" {
				t.Setenv("DBUS_SESSION_BUS_ADDRESS", noBus)
			}
			c := newCLI(t)
			dir := filepath.Join(t.TempDir(), "node")
			if tc.setup != nil {
				tc.setup(dir)
			}
			env := map[string]string{"PALYRA_CONFIG_DIR": dir}
			for k, v := range tc.env {
				env[k] = v
			}
			code, got := c.doctorJSON(env, "--timeout", "2s")
			if code != tc.code {
				t.Errorf("exit %d, want %d: %v", code, tc.code, got)
			}
			wantStatuses(t, got, tc.want)
			for check, part := range tc.says {
				mustContain(t, got[check], part)
			}
			if _, ok := got["gateway"]; ok {
				t.Errorf("an unpaired node was probed: %v", got)
			}
			if tc.setup == nil {
				if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("doctor created %s: %v", dir, err)
				}
			}
		})
	}
}

func TestDoctorUsage(t *testing.T) {
	c := newCLI(t)
	if code, _, errOut := c.doctor(nil, "extra"); code != 2 || !strings.Contains(errOut, "Usage: palyra doctor") {
		t.Errorf("doctor extra: exit %d: %s", code, errOut)
	}
	if code, _, errOut := c.doctor(nil, "--timeout", "0s"); code != 2 || !strings.Contains(errOut, "--timeout must be positive") {
		t.Errorf("doctor --timeout 0s: exit %d: %s", code, errOut)
	}
}

func mkdir(t *testing.T, dir string, mode os.FileMode) {
	t.Helper()
	if err := os.Mkdir(dir, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil { // past the umask
		t.Fatal(err)
	}
}

// startStoppableGateway is startGateway with a stop function, for tests of
// a gateway that went away.
func (c *cli) startStoppableGateway() (string, func()) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var errOut syncbuf.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, c.environment("", &syncbuf.Buffer{}, &errOut, nil), []string{"gateway", "run", "--listen", "127.0.0.1:0"})
	}()
	var once bool
	stop := func() {
		if !once {
			once = true
			cancel()
			<-done
		}
	}
	c.t.Cleanup(stop)
	line := waitForLine(c.t, &errOut, "listening on ")
	word := strings.Fields(strings.SplitN(line, "listening on ", 2)[1] + " ")[0]
	return strings.TrimSuffix(word, ";"), stop
}

// The real-keychain test runs doctor against gnome-keyring on a private
// D-Bus session, in a child process (godbus caches its session bus per
// process), with a throwaway HOME so no real keyring is touched.
const (
	doctorKeychainHelperEnv = "PALYRA_DOCTOR_KEYCHAIN_HELPER"
	doctorKeyringPassword   = "PALYRA_TEST_KEYRING_PASSWORD"
	doctorKeyringScript     = `printf %s "$` + doctorKeyringPassword + `" | gnome-keyring-daemon --unlock --components=secrets >/dev/null && exec "$0" "$@"`
)

// TestDoctorRealKeychain: with a working OS keychain the probe item is
// written, read back and deleted, and the store is reported ok.
func TestDoctorRealKeychain(t *testing.T) {
	for _, tool := range []string{"dbus-run-session", "gnome-keyring-daemon"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found (install gnome-keyring and dbus-x11; make test does)", tool)
		}
	}
	dir := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "HOME" || k == "DBUS_SESSION_BUS_ADDRESS" || k == "DISPLAY" || k == "WAYLAND_DISPLAY" ||
			strings.HasPrefix(k, "XDG_") || strings.HasPrefix(k, "PALYRA_") {
			continue
		}
		env = append(env, kv)
	}
	for k, sub := range map[string]string{"HOME": "home", "XDG_DATA_HOME": "data", "XDG_CONFIG_HOME": "config", "XDG_CACHE_HOME": "cache", "XDG_RUNTIME_DIR": "run"} {
		mkdir(t, filepath.Join(dir, sub), 0o700)
		env = append(env, k+"="+filepath.Join(dir, sub))
	}
	env = append(env, doctorKeychainHelperEnv+"=1", doctorKeyringPassword+"=palyra-test-only")
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "dbus-run-session", "--", "sh", "-c", doctorKeyringScript, os.Args[0],
		"-test.run=^TestDoctorKeychainHelper$", "-test.count=1", "-test.v", "-test.timeout=60s")
	cmd.Env = env
	// A file, not a pipe: gnome-keyring-daemon detaches and may hold
	// inherited descriptors open for a while.
	out, err := os.Create(filepath.Join(dir, "output"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 5 * time.Second
	runErr := cmd.Run()
	log, _ := os.ReadFile(out.Name())
	if runErr != nil || !strings.Contains(string(log), "--- PASS: TestDoctorKeychainHelper") {
		t.Fatalf("helper: %v\n%s", runErr, log)
	}
}

// TestDoctorKeychainHelper is not a test on its own: it is
// TestDoctorRealKeychain's child process, and does nothing (and passes) when
// run directly.
func TestDoctorKeychainHelper(t *testing.T) {
	if os.Getenv(doctorKeychainHelperEnv) != "1" {
		return
	}
	c := newCLI(t)
	env := map[string]string{"PALYRA_SECRET_STORE": "keychain", "PALYRA_CONFIG_DIR": filepath.Join(t.TempDir(), "node")}
	code, got := c.doctorJSON(env, "--profile", "doctor-test", "--timeout", "10s")
	if code != 0 {
		t.Errorf("doctor with a working keychain: exit %d: %v", code, got)
	}
	wantStatuses(t, got, map[string]string{"secret store": statusOK, "identity": statusWarn})
	mustContain(t, got["secret store"], `the OS keychain (profile "doctor-test") stores, reads and deletes items`)
	k, err := secretstore.NewKeychain(secretstore.KeychainOptions{Profile: "doctor-test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get(storeItemProbe); !errors.Is(err, secretstore.ErrNotFound) {
		t.Errorf("the probe item is still in the keychain: %v", err)
	}
}

// TestDoctorCertificate checks the certificate verdicts on stored
// certificates of every age.
func TestDoctorCertificate(t *testing.T) {
	now := time.Now()
	ca, err := identity.NewCA(rand.Reader, "Doctor Test CA", now.Add(-90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	other, err := identity.NewCA(rand.Reader, "Another CA", now.Add(-90*24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateDeviceKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	csr, err := key.CreateCSR(rand.Reader, "laptop")
	if err != nil {
		t.Fatal(err)
	}
	issue := func(by *identity.CA, issued time.Time) *x509.Certificate {
		c, err := by.IssueDeviceCertificate(csr, identity.IssueOptions{Now: issued, Lifetime: 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for _, tc := range []struct {
		name     string
		cert     *x509.Certificate
		pinned   *identity.CA
		deviceID string
		status   string
		says     string
	}{
		{"fresh", issue(ca, now), ca, key.ID().String(), statusOK, "valid until"},
		{"two thirds used", issue(ca, now.Add(-20*time.Hour)), ca, key.ID().String(), statusWarn, "less than a third of its 24h1m lifetime left"},
		{"expired lately", issue(ca, now.Add(-72*time.Hour)), ca, key.ID().String(), statusWarn, "expired 2 days ago"},
		{"expired long ago", issue(ca, now.Add(-60*24*time.Hour)), ca, key.ID().String(), statusFail, "pair again"},
		{"other CA", issue(other, now), ca, key.ID().String(), statusFail, "untrusted certificate"},
		{"other device", issue(ca, now), ca, "AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAAAAA-AAAAAA", statusFail, "the certificate is for device " + key.ID().String()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			store, err := secretstore.NewFile(filepath.Join(t.TempDir(), "secrets"))
			if err != nil {
				t.Fatal(err)
			}
			for item, c := range map[string]*x509.Certificate{node.SecretDeviceCert: tc.cert, node.SecretGatewayCA: tc.pinned.Certificate()} {
				if err := store.Set(item, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})); err != nil {
					t.Fatal(err)
				}
			}
			d := &doctor{json: true}
			pinned := d.checkCertificate(store, node.Status{DeviceID: tc.deviceID})
			if len(d.results) != 1 || pinned == nil || !pinned.Equal(tc.pinned.Certificate()) {
				t.Fatalf("checkCertificate: %v, pinned CA %v", d.results, pinned)
			}
			if r := d.results[0]; r.Status != tc.status || !strings.Contains(r.Detail, tc.says) {
				t.Errorf("%s: %q, want %s mentioning %q", r.Status, r.Detail, tc.status, tc.says)
			}
		})
	}
}

func TestRoughly(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{1500 * time.Millisecond, "2s"}, {90 * time.Second, "1m30s"}, {5 * time.Minute, "5m"},
		{23*time.Hour + 59*time.Minute + 40*time.Second, "24h0m"}, {2 * time.Hour, "2h0m"}, {50 * time.Hour, "2 days"},
	} {
		if got := roughly(tc.d); got != tc.want {
			t.Errorf("roughly(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// TestDoctorWrongGateway: another gateway answers at the stored address, so
// neither probe trusts it.
func TestDoctorWrongGateway(t *testing.T) {
	c := newCLI(t)
	nodeEnv := c.pairNode(c.startGateway())
	other := newCLI(t).startGateway()
	conf := filepath.Join(nodeEnv["PALYRA_CONFIG_DIR"], "node.json")
	b, err := json.Marshal(node.StoredConfig{DeviceName: "doctor-laptop", GatewayName: "Palyra gateway", Gateways: []string{other}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, b, 0o600); err != nil {
		t.Fatal(err)
	}
	code, got := c.doctorJSON(nodeEnv)
	if code != 1 {
		t.Fatalf("doctor against another gateway: exit %d: %v", code, got)
	}
	for _, proto := range []string{"TCP", "UDP"} {
		r := got["gateway "+other+" over "+proto]
		if r.Status != statusFail {
			t.Errorf("%s: %s %q, want fail", proto, r.Status, r.Detail)
		}
		mustContain(t, r, "does not match the CA pinned when pairing", "pair again")
	}
}
