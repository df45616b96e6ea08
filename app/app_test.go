package app

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/internal/wire"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/capability"
	"github.com/palyra/palyra-go/node/pairclient"
)

var now = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

func TestStatusLineAndTray(t *testing.T) {
	for _, tc := range []struct {
		st        node.Status
		attention bool
		line      string
		tray      TrayState
	}{
		{node.Status{State: node.StateUnpaired, DeviceName: "laptop"}, false, "Not paired — laptop has no gateway yet", TrayNotPaired},
		{node.Status{State: node.StatePairing}, false, "Pairing…", TrayConnecting},
		{node.Status{State: node.StatePending, VerificationCode: "123 456"}, false, "Waiting for approval — code 123 456", TrayConnecting},
		{node.Status{State: node.StateConnecting, GatewayName: "Home", DeviceName: "laptop"}, false, "Connecting to Home as laptop…", TrayConnecting},
		{node.Status{State: node.StateConnected, GatewayName: "Home", DeviceName: "laptop", Transport: wire.TransportQUIC}, false, "Connected to Home as laptop", TrayConnected},
		{node.Status{State: node.StateConnected, GatewayName: "Home", DeviceName: "laptop", Transport: wire.TransportGRPC}, true, "Connected to Home as laptop (over TCP)", TrayAttention},
		{node.Status{State: node.StateConnected, GatewayName: "Home", DeviceName: "laptop", Transport: wire.TransportGRPC, FallbackReason: "QUIC (UDP) did not answer within 250 ms; using TCP", FallbackError: strings.Repeat("quic: no recent network activity; ", 10)}, false, "Connected to Home as laptop — QUIC (UDP) did not answer within 250 ms; using TCP", TrayConnected},
		{node.Status{State: node.StateOffline, GatewayName: "Home", RetryAt: now.Add(2300 * time.Millisecond)}, false, "Offline from Home — retrying in 3 s", TrayOffline},
		{node.Status{State: node.StateOffline, GatewayName: "Home", RetryAt: now.Add(-time.Second)}, false, "Offline from Home — retrying in 1 s", TrayOffline},
		{node.Status{State: node.StateOffline, DeviceName: "laptop"}, false, "Offline from the gateway (laptop)", TrayOffline},
		{node.Status{State: node.StateRevoked, GatewayName: "Home"}, false, "Revoked by Home; it no longer accepts this device", TrayAttention},
		{node.Status{State: node.StateRevoked, GatewayName: "Home", RevokedAt: time.Date(2026, 3, 4, 12, 0, 0, 0, time.Local)}, false,
			"Revoked by Home on 2026-03-04 — forget the gateway or pair again", TrayAttention},
	} {
		t.Run(string(tc.st.State), func(t *testing.T) {
			if got := StatusLine(tc.st, now); got != tc.line {
				t.Errorf("StatusLine = %q, want %q", got, tc.line)
			}
			if got := TrayStateOf(tc.st, tc.attention); got != tc.tray {
				t.Errorf("TrayStateOf = %v, want %v", got, tc.tray)
			}
			if TrayStateOf(tc.st, tc.attention).Icon() == nil {
				t.Error("no icon")
			}
		})
	}
	if got := DetailLine(node.Status{State: node.StateOffline, LastError: strings.Repeat("x", 200) + "\nmore"}); len([]rune(got)) != 90 || !strings.HasSuffix(got, "…") {
		t.Errorf("DetailLine not shortened: %q", got)
	}
}

func TestMenu(t *testing.T) {
	caps := []capability.Info{
		{Spec: capability.Spec{Name: "system.info", Label: "Read system information"}, Enabled: true, Consent: capability.ConsentAllow},
		// Without a label the menu falls back to the ID.
		{Spec: capability.Spec{Name: "shell.exec"}, Enabled: false, Consent: capability.ConsentAsk},
	}
	var calls []string
	act := Actions{
		Pair:          func() { calls = append(calls, "pair") },
		SetCapability: func(n string, on bool) { calls = append(calls, fmt.Sprintf("%s=%v", n, on)) },
		SetLocal:      func(on bool) { calls = append(calls, fmt.Sprintf("local=%v", on)) },
		ShowCode:      func() { calls = append(calls, "code") },
		Forget:        func() { calls = append(calls, "forget") },
		Quit:          func() { calls = append(calls, "quit") },
	}
	labels := func(m *fyne.Menu) string {
		var out []string
		for _, it := range m.Items {
			if it.IsSeparator {
				out = append(out, "—")
				continue
			}
			l := it.Label
			if it.Checked {
				l = "[x] " + l
			}
			if it.Disabled {
				l += " (disabled)"
			}
			out = append(out, l)
		}
		return strings.Join(out, " | ")
	}
	st := node.Status{State: node.StateConnected, GatewayName: "Home", DeviceName: "laptop"}

	m := BuildModel(st, caps, LocalState{Available: true, On: true}, false, now)
	menu := m.Menu(act)
	want := "Connected to Home as laptop (disabled) | — | Pair with gateway… | — | Shared capabilities (disabled) | [x] Read system information | shell.exec (asks) | — | [x] Run local gateway | Show pairing code… | Forget gateway… | — | About Palyra… | Quit"
	if got := labels(menu); got != want {
		t.Errorf("menu:\n got %s\nwant %s", got, want)
	}
	for _, it := range menu.Items {
		if it.ChildMenu != nil {
			t.Errorf("%q has a submenu; tray hosts on libdbusmenu-gtk can show it empty", it.Label)
		}
	}
	menu.Items[6].Action()
	menu.Items[5].Action()
	menu.Items[8].Action()
	menu.Items[9].Action()
	if got := strings.Join(calls, ","); got != "shell.exec=true,system.info=false,local=false,code" {
		t.Errorf("actions: %s", got)
	}

	// Local gateway off: no pairing code; unpaired: nothing to forget;
	// waiting for approval: Pair brings the wizard back to the request.
	m = BuildModel(node.Status{State: node.StatePending, VerificationCode: "111 222"}, caps, LocalState{Available: true}, false, now)
	want = "Waiting for approval — code 111 222 (disabled) | — | Pair with gateway… | — | Shared capabilities (disabled) | [x] Read system information | shell.exec (asks) | — | Run local gateway | Forget gateway… (disabled) | — | About Palyra… | Quit"
	if got := labels(m.Menu(act)); got != want {
		t.Errorf("menu while waiting for approval:\n got %s\nwant %s", got, want)
	}
	// Connecting to pair: no second wizard.
	if m = BuildModel(node.Status{State: node.StatePairing}, caps, LocalState{Available: true}, false, now); m.CanPair || m.CanForget {
		t.Errorf("while pairing: can pair %v, can forget %v", m.CanPair, m.CanForget)
	}
	// Built without a local gateway: no such item.
	m = BuildModel(node.Status{State: node.StateOffline, LastError: "dial: refused"}, caps, LocalState{}, false, now)
	want = "Offline from the gateway (this device) (disabled) | dial: refused (disabled) | — | Pair with gateway… | — | Shared capabilities (disabled) | [x] Read system information | shell.exec (asks) | — | Forget gateway… | — | About Palyra… | Quit"
	if got := labels(m.Menu(act)); got != want {
		t.Errorf("menu offline:\n got %s\nwant %s", got, want)
	}
	// Paired with the local gateway, which is turned off: say so, not the
	// transport's error.
	m = BuildModel(node.Status{State: node.StateOffline, LastError: "reading frame header: Application error 0x100"}, caps, LocalState{Available: true, Paired: true}, false, now)
	if m.Detail != LocalStoppedDetail || m.ShowCode {
		t.Errorf("local gateway stopped: detail %q, show code %v", m.Detail, m.ShowCode)
	}
	m = BuildModel(node.Status{State: node.StateOffline, LastError: "dial: refused"}, caps, LocalState{Available: true, On: true, Paired: true}, false, now)
	if m.Detail != "dial: refused" {
		t.Errorf("local gateway on, offline: detail %q", m.Detail)
	}
	// Waiting to retry: the window counts down, the tray names the time
	// (its menu would be rebuilt every second otherwise).
	retry := node.Status{State: node.StateOffline, GatewayName: "Home", RetryAt: now.Add(30 * time.Second)}
	m = BuildModel(retry, caps, LocalState{}, false, now)
	later := BuildModel(retry, caps, LocalState{}, false, now.Add(5*time.Second))
	wantTray := "Offline from Home — retrying at " + now.Add(30*time.Second).Local().Format("15:04:05")
	if m.Status != "Offline from Home — retrying in 30 s" || later.Status != "Offline from Home — retrying in 25 s" ||
		m.Menu(act).Items[0].Label != wantTray || menuSignature(later.Menu(act)) != menuSignature(m.Menu(act)) {
		t.Errorf("retrying: window %q then %q; tray %q, want %q", m.Status, later.Status, m.Menu(act).Items[0].Label, wantTray)
	}
	m = BuildModel(node.Status{State: node.StateOffline, LastError: "dial: refused"}, caps, LocalState{}, false, now)
	if !m.Menu(act).Items[len(m.Menu(act).Items)-1].IsQuit {
		t.Error("Quit is not marked as the quit item")
	}
}

func TestPINHint(t *testing.T) {
	valid := validPIN(t)
	for _, tc := range []struct {
		in   string
		ok   bool
		want string
	}{
		{"", false, "Type the 9-digit PIN"},
		{"123-4", false, "4 of 9 digits."},
		{valid, true, "✓ " + valid + " — the check digit matches."},
		{typo(valid), false, "The digits do not check out; please look for a typo."},
		{"12a", false, "'a' is not a digit"},
		{"1234567890", false, "It has 10 digits, a PIN has 9."},
	} {
		got, ok := PINHint(tc.in)
		if ok != tc.ok || !strings.Contains(got, tc.want) {
			t.Errorf("PINHint(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOutcome(t *testing.T) {
	st := node.Status{GatewayName: "Home", DeviceName: "laptop"}
	for _, tc := range []struct {
		err   error
		title string
		text  string
	}{
		{nil, "Paired", "paired with Home as laptop"},
		{fmt.Errorf("pairing: %w", pairing.ErrRejected), "Rejected", "rejected this device"},
		{fmt.Errorf("pairing: %w", pairing.ErrRequestExpired), "Expired", "Nobody approved the request in time"},
		{fmt.Errorf("pairing: %w", pairing.ErrWrongCode), "Wrong code", "The code was wrong"},
		{fmt.Errorf("pairing: %w", pairing.ErrConfirmationFailed), "Wrong code", "The code was wrong"},
		{context.Canceled, "Cancelled", "Nothing was stored"},
		{fmt.Errorf("dialing: %w", pairclient.ErrUnreachable), "Unreachable", "Could not reach the gateway"},
		{&pairclient.ThrottledError{Address: "gw:7443", Message: "too many pairing attempts from this address; try again in 10 s", RetryAfter: 10 * time.Second},
			"Too many attempts", "The gateway at gw:7443 refused to start pairing: too many pairing attempts from this address; try again in 10 s."},
		{errors.New("disk full"), "Pairing failed", "Disk full."},
	} {
		title, text := Outcome(st, tc.err)
		if title != tc.title || !strings.Contains(text, tc.text) {
			t.Errorf("Outcome(%v) = %q, %q; want %q, …%q…", tc.err, title, text, tc.title, tc.text)
		}
	}
}

// fakePairer pairs as a test says: it reports pending, then waits for the
// test's verdict or for cancellation.
type fakePairer struct {
	got     chan node.PairOptions
	verdict chan error
}

func (f *fakePairer) Pair(ctx context.Context, opts node.PairOptions) (node.Status, error) {
	f.got <- opts
	opts.OnPending(pairclient.Pending{RequestID: "r1", VerificationCode: "482 913"})
	select {
	case err := <-f.verdict:
		return node.Status{GatewayName: "Home", DeviceName: "laptop"}, err
	case <-ctx.Done():
		return node.Status{}, ctx.Err()
	}
}

func TestWizard(t *testing.T) {
	test.NewTempApp(t)
	valid := validPIN(t)
	for _, tc := range []struct {
		name    string
		verdict error
		cancel  bool
		title   string
	}{
		{name: "approved", title: "Paired"},
		{name: "rejected", verdict: pairing.ErrRejected, title: "Rejected"},
		{name: "expired", verdict: pairing.ErrRequestExpired, title: "Expired"},
		{name: "wrong code", verdict: pairing.ErrWrongCode, title: "Wrong code"},
		{name: "cancelled", cancel: true, title: "Cancelled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakePairer{got: make(chan node.PairOptions, 1), verdict: make(chan error, 1)}
			done := make(chan error, 1)
			z := NewWizard(fyne.CurrentApp(), f, func() time.Time { return now }, func(_ node.Status, err error) { done <- err })
			z.steps = make(chan WizardStep, 4)
			z.Show()
			defer z.Window().Close()
			if z.Window().Canvas().Focused() != z.Address {
				t.Error("the gateway address does not have the cursor when the wizard opens")
			}

			if !z.PairPIN.Disabled() {
				t.Fatal("Pair is enabled with nothing typed")
			}
			test.Type(z.Address, "127.0.0.1:7443")
			test.Type(z.PIN, typo(valid))
			if !z.PairPIN.Disabled() || !strings.Contains(z.pinHint.Text, "typo") {
				t.Fatalf("a mistyped PIN: hint %q, Pair enabled %v", z.pinHint.Text, !z.PairPIN.Disabled())
			}
			z.PIN.SetText("")
			test.Type(z.PIN, valid)
			if z.PairPIN.Disabled() {
				t.Fatalf("Pair disabled for a valid PIN: %q", z.pinHint.Text)
			}
			test.Tap(z.PairPIN)
			opts := <-f.got
			if opts.Gateway != "127.0.0.1:7443" || opts.PIN != valid {
				t.Errorf("paired with %+v", opts)
			}
			for step := range z.steps {
				if step == StepWaiting {
					break
				}
			}
			if z.Code.Text != "482 913" || z.Cancel.Hidden {
				t.Errorf("waiting: code %q, cancel hidden %v", z.Code.Text, z.Cancel.Hidden)
			}
			if tc.cancel {
				test.Tap(z.Cancel)
			} else {
				f.verdict <- tc.verdict
			}
			err := <-done
			if step := <-z.steps; step != StepDone {
				t.Errorf("step %v after the verdict", step)
			}
			if z.Step != StepDone || z.Title.Text != tc.title {
				t.Errorf("outcome: step %v, title %q (err %v), want %q", z.Step, z.Title.Text, err, tc.title)
			}
			if want := map[bool]fyne.Focusable{true: z.Close, false: z.Again}[err == nil]; z.Window().Canvas().Focused() != want {
				t.Errorf("after err %v the keyboard is on %v", err, z.Window().Canvas().Focused())
			}
			if (err == nil) == z.Again.Visible() {
				t.Errorf("Try again visible %v after err %v", z.Again.Visible(), err)
			}
		})
	}
}

// waitUntil polls cond on a ticker; fyne.Do in the test driver runs at
// once, but the pairing runs on its own goroutine.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatal("condition not met in 10s")
		}
	}
}

// newTestAgent is a real, unpaired agent named test-laptop, its secrets in
// files.
func newTestAgent(t *testing.T) *node.Agent {
	t.Helper()
	dir := t.TempDir()
	secrets, err := secretstore.NewFile(dir + "/secrets")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := node.New(node.Config{ConfigDir: dir, Secrets: secrets, Name: "test-laptop"})
	if err != nil {
		t.Fatal(err)
	}
	return agent
}

// TestMainWindowWithAgent drives the window of a real, unpaired agent:
// toggling a capability reaches the agent, and the status line says what
// the agent says.
func TestMainWindowWithAgent(t *testing.T) {
	test.NewTempApp(t)
	agent := newTestAgent(t)
	mu := &uiMu // one for every test UI: Fyne's caches are global
	do := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	u := New(fyne.CurrentApp(), Options{Agent: agent, Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })
	w := u.Window()
	if w == nil {
		t.Fatal("no main window without a tray")
	}
	mu.Lock()
	if got := u.Model().Status; got != "Not paired — test-laptop has no gateway yet" {
		t.Errorf("status %q", got)
	}
	if u.win.status.Text != u.Model().Status || !u.win.forget.Disabled() || u.win.pair.Disabled() || u.win.local.Visible() {
		t.Errorf("window: status %q, forget disabled %v, pair disabled %v, local visible %v",
			u.win.status.Text, u.win.forget.Disabled(), u.win.pair.Disabled(), u.win.local.Visible())
	}
	check := u.win.checks["clipboard.read"]
	if check == nil || check.Checked {
		t.Fatalf("clipboard.read check: %+v", check)
	}
	// People read words; the ID stays beside them for the admin.
	if check.Text != "Read the clipboard" {
		t.Errorf("clipboard.read's check says %q, want its label", check.Text)
	}
	if !windowShows(w.Content(), "Read the text on this computer's clipboard. (clipboard.read)") {
		t.Error("the main window does not show clipboard.read's description with its ID")
	}
	if !windowShows(w.Content(), "Run allowed programs (asks)") {
		t.Error("the main window does not show shell.exec's label with (asks)")
	}
	test.Tap(check)
	mu.Unlock()
	on := false
	for _, c := range agent.Capabilities() {
		if c.Name == "clipboard.read" {
			on = c.Enabled
		}
	}
	if !on {
		t.Error("tapping clipboard.read did not turn it on in the agent")
	}
	waitUntil(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return u.Model().Capabilities[0].Enabled && u.win.checks["clipboard.read"].Checked
	})
	mu.Lock()
	defer mu.Unlock()
	test.Tap(u.win.pair)
	if u.Wizard() == nil {
		t.Fatal("Pair with gateway… opened no wizard")
	}
}

func TestPrompter(t *testing.T) {
	test.NewTempApp(t)
	p := NewPrompter(fyne.CurrentApp())
	p.shown = make(chan *Prompt, 1)
	// Fyne's caches are global: the test's taps and the prompter's windows
	// take the lock every test UI's goroutines take.
	p.do = func(f func()) { uiMu.Lock(); defer uiMu.Unlock(); f() }
	q := capability.Question{Capability: "shell.exec", Label: "Run allowed programs", Summary: "run /usr/bin/uptime", Caller: "admin@Home"}
	for _, tc := range []struct {
		name string
		tap  func(*Prompt)
		want capability.Answer
	}{
		{"once", func(pr *Prompt) { test.Tap(pr.Once) }, capability.AnswerAllowOnce},
		{"always", func(pr *Prompt) { test.Tap(pr.Always) }, capability.AnswerAlways},
		{"deny", func(pr *Prompt) { test.Tap(pr.Deny) }, capability.AnswerDeny},
		{"closed", func(pr *Prompt) { pr.W.Close() }, capability.AnswerDeny},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := make(chan capability.Answer, 1)
			go func() {
				a, _ := p.Ask(context.Background(), q)
				res <- a
			}()
			pr := <-p.shown
			if !strings.Contains(pr.Text.Text, "admin@Home asks to use \u201cRun allowed programs\u201d (shell.exec)") || !strings.Contains(pr.Text.Text, "run /usr/bin/uptime") {
				t.Errorf("prompt text %q", pr.Text.Text)
			}
			p.do(func() { tc.tap(pr) })
			if got := <-res; got != tc.want {
				t.Errorf("answer %v, want %v", got, tc.want)
			}
		})
	}
	// Unanswered: the deadline denies, and the window goes away.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	go func() { <-p.shown }()
	a, err := p.Ask(ctx, q)
	if a != capability.AnswerDeny || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("unanswered: %v, %v", a, err)
	}
}

// validPIN finds a PIN whose check digit is right, by asking ParsePIN.
func validPIN(t *testing.T) string {
	t.Helper()
	for d := '0'; d <= '9'; d++ {
		s := "31-415926-" + string(d)
		if pin, err := pairing.ParsePIN(s); err == nil {
			return pin.Display()
		}
	}
	t.Fatal("no check digit works")
	return ""
}

// typo changes the PIN's first digit.
func typo(pin string) string {
	b := []byte(pin)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

// trayApp records what the UI gives the system tray.
type trayApp struct {
	fyne.App
	menus []*fyne.Menu
	icons []fyne.Resource
}

func (a *trayApp) SetSystemTrayMenu(m *fyne.Menu)    { a.menus = append(a.menus, m) }
func (a *trayApp) SetSystemTrayIcon(r fyne.Resource) { a.icons = append(a.icons, r) }
func (a *trayApp) SetSystemTrayWindow(w fyne.Window) {}

// TestTrayUpdates checks the tray gets a new menu and icon only when what
// they show changes: each new menu replaces every item in the desktop's
// tray, under the pointer of someone about to click.
func TestTrayUpdates(t *testing.T) {
	ta := &trayApp{App: test.NewTempApp(t)}
	agent := newTestAgent(t)
	mu := &uiMu // one for every test UI: Fyne's caches are global
	do := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	u := New(ta, Options{Agent: agent, Tray: true, Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })
	do(func() {
		if u.Window() != nil {
			t.Error("a main window as well as the tray")
		}
		if len(ta.menus) != 1 || len(ta.icons) != 1 || ta.menus[0] != u.TrayMenu() {
			t.Fatalf("after start: %d menus, %d icons", len(ta.menus), len(ta.icons))
		}
		u.refresh()
		u.refresh()
		if len(ta.menus) != 1 || len(ta.icons) != 1 {
			t.Errorf("refreshing an unchanged tray: %d menus, %d icons", len(ta.menus), len(ta.icons))
		}
	})
	var toggle *fyne.MenuItem
	do(func() {
		// The tray says what a capability does, not its ID.
		for _, it := range u.TrayMenu().Items {
			if it.Label == "Read the clipboard" {
				toggle = it
			}
			if strings.Contains(it.Label, "clipboard.read") || strings.Contains(it.Label, "shell.exec") {
				t.Errorf("tray menu item %q shows a capability ID", it.Label)
			}
		}
	})
	if toggle == nil || toggle.Checked {
		t.Fatalf("\u201cRead the clipboard\u201d in the tray menu: %+v", toggle)
	}
	do(toggle.Action)
	do(func() {
		if len(ta.menus) != 2 || len(ta.icons) != 1 {
			t.Fatalf("after toggling: %d menus, %d icons", len(ta.menus), len(ta.icons))
		}
		for _, it := range u.TrayMenu().Items {
			if it.Label == "Read the clipboard" && !it.Checked {
				t.Error("\u201cRead the clipboard\u201d is not checked in the new menu")
			}
		}
	})
	u.addAttention(1)
	do(func() {
		if len(ta.icons) != 2 || ta.icons[1] != TrayAttention.Icon() {
			t.Errorf("needing attention: icons %v", ta.icons)
		}
	})
}

// windowShows reports whether a label or check in o's tree says text.
func windowShows(o fyne.CanvasObject, text string) bool {
	for _, obj := range test.LaidOutObjects(o) {
		switch w := obj.(type) {
		case *widget.Label:
			if w.Text == text {
				return true
			}
		case *widget.Check:
			if w.Text == text {
				return true
			}
		}
	}
	return false
}
