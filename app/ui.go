package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/dialog"
	"fyne.io/fyne/v2/driver/desktop"

	"github.com/palyra/palyra-go/node"
)

// ErrPairedElsewhere is what LocalGateway.PairAgent returns (wrapped) when
// the device is paired with another gateway; the app then leaves the
// pairing alone.
var ErrPairedElsewhere = errors.New("this device is paired with another gateway")

// Options configure the UI.
type Options struct {
	Agent *node.Agent
	// StartLocalGateway starts the embedded gateway; nil hides "Run local
	// gateway".
	StartLocalGateway StartLocalGateway
	// LocalGateway starts the local gateway at launch.
	LocalGateway bool
	// Tray puts the menu in the system tray; otherwise the main window
	// holds the status and the actions (see TrayAvailable).
	Tray bool
	// Autostart starts the app at login; nil hides "Start at login" (where
	// the desktop has no autostart the app knows how to write).
	Autostart Autostart
	// Prompter shows consent prompts; it is the agent's Asker.
	Prompter *Prompter
	Logger   *slog.Logger
	Now      func() time.Time
	// CodeTTL is how long a code from "Show pairing code…" lasts.
	CodeTTL time.Duration
	// Do runs a function on the UI goroutine; default fyne.Do. Tests give
	// one that serialises with their own taps (Fyne's test driver runs
	// fyne.Do on the calling goroutine).
	Do func(func())
}

// Autostart is the app's entry in the desktop's autostart (see package
// app/autostart).
type Autostart interface {
	Enabled() bool
	Set(on bool) error
}

// DefaultCodeTTL is how long a pairing code shown by the app lasts.
const DefaultCodeTTL = 10 * time.Minute

// UI is the running user interface. Its fields are touched only on the Fyne
// goroutine (through fyne.Do from elsewhere), so it needs no lock.
type UI struct {
	fa    fyne.App
	opts  Options
	log   *slog.Logger
	ctx   context.Context
	notes *notifier

	status       node.Status
	wasConnected bool
	run          *runState
	local        LocalGateway
	localBusy    bool
	// localPaired is set while this device is paired with the local
	// gateway (as far as this run of the app knows).
	localPaired  bool
	autostartOn  bool
	stopRequests context.CancelFunc
	attention    int
	model        Model
	lastMenu     *fyne.Menu
	lastMenuSig  string
	lastTray     TrayState
	trayIconSet  bool

	win    *mainWindow
	wizard *Wizard
	code   *codeWindow
	about  fyne.Window
}

// runState is one agent.Run in the background.
type runState struct {
	cancel context.CancelFunc
	done   chan struct{}
	// collecting is set while this run waits for the answer to a pairing
	// request made before it started (see collected).
	collecting bool
}

// New makes the UI; Start shows it.
func New(fa fyne.App, opts Options) *UI {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Do == nil {
		opts.Do = fyne.Do
	}
	if opts.CodeTTL == 0 {
		opts.CodeTTL = DefaultCodeTTL
	}
	u := &UI{fa: fa, opts: opts, log: opts.Logger, status: opts.Agent.Status(),
		notes: newNotifier(fa.SendNotification, opts.Logger)}
	if opts.Prompter != nil {
		opts.Prompter.onAttention = u.addAttention
		opts.Prompter.notes = u.notes
	}
	return u
}

// Start shows the tray menu or the main window, follows the agent until ctx
// ends, runs it when paired and starts the local gateway if asked. Call it
// on the Fyne goroutine (before app.Run, or inside fyne.Do).
func (u *UI) Start(ctx context.Context) {
	u.ctx = ctx
	if u.opts.Autostart != nil {
		u.autostartOn = u.opts.Autostart.Enabled()
	}
	if !u.opts.Tray {
		u.win = newMainWindow(u)
		u.win.w.Show()
	}
	u.refresh()
	go u.follow(ctx)
	if u.opts.LocalGateway && u.opts.StartLocalGateway != nil {
		// The local gateway pairs this device, replacing a request that
		// may wait elsewhere.
		u.setLocal(true)
		return
	}
	u.startAgent()
	if u.run != nil && u.run.collecting {
		// The app restarted while a request waited: say so, with its code.
		u.ShowWizard()
	}
}

// ShowMain shows the main window and brings it forward, as a second launch
// of the app asks; a tray app gets one too. Call it on the Fyne goroutine.
func (u *UI) ShowMain() {
	if u.win == nil {
		u.win = newMainWindow(u)
		u.refresh()
	}
	u.win.w.Show()
	u.win.w.RequestFocus()
}

// Model is the current model (for tests and the main window).
func (u *UI) Model() Model { return u.model }

// Window is the main window, or nil when the app lives in the tray.
func (u *UI) Window() fyne.Window {
	if u.win == nil {
		return nil
	}
	return u.win.w
}

// follow applies the agent's status changes, and ticks once a second so
// "retrying in N s" counts down.
func (u *UI) follow(ctx context.Context) {
	ch := u.opts.Agent.Watch(ctx)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case st, ok := <-ch:
			if !ok {
				return
			}
			u.opts.Do(func() { u.apply(st) })
		case <-tick.C:
			u.opts.Do(func() {
				if u.status.State == node.StateOffline && !u.status.RetryAt.IsZero() {
					u.refresh()
				}
			})
		case <-ctx.Done():
			return
		}
	}
}

// apply takes a new status: notifications for what changed, then the views.
func (u *UI) apply(st node.Status) {
	prev := u.status
	u.status = st
	switch {
	case st.State == node.StateConnected:
		u.wasConnected = true
	case st.State == node.StateOffline && !st.RetryAt.IsZero() && prev.State == node.StateConnected && u.wasConnected:
		u.notify("Palyra is offline", fmt.Sprintf("Lost the connection to %s; retrying.", nameOr(st.GatewayName, "the gateway")))
	case st.State == node.StateRevoked && prev.State != node.StateRevoked:
		u.notify("This device was revoked", fmt.Sprintf("%s no longer accepts this device; it has stopped connecting.", nameOr(st.GatewayName, "The gateway")))
	}
	if r := u.run; r != nil && r.collecting {
		switch st.State {
		case node.StateOffline, node.StateConnecting, node.StateConnected:
			// The agent holds its certificate and goes on to connect.
			r.collecting = false
			u.collected(st, nil)
		case node.StatePending:
			if u.wizard != nil && u.wizard.Step == StepStillWaiting {
				u.wizard.ShowStillWaiting(st)
			}
		}
	}
	u.refresh()
}

// collected is how a request the agent collected ended: err is nil once it
// holds the certificate, or what Run returned (rejected, expired…).
func (u *UI) collected(st node.Status, err error) {
	title, text := Outcome(st, err)
	u.log.Info("pending pairing request answered", "outcome", title, "err", err)
	u.notify("Palyra: "+title, text)
	if u.wizard != nil {
		u.wizard.Collected(st, err)
	}
}

// awaitingApproval reports whether a pairing request waits for approval on
// an unpaired device: the one case Agent.Run collects it in.
func (u *UI) awaitingApproval() bool {
	return !u.opts.Agent.Paired() && u.opts.Agent.HasPendingPairing()
}

// refresh recomputes the model and updates the tray and the window.
func (u *UI) refresh() {
	local := LocalState{Available: u.opts.StartLocalGateway != nil, On: u.local != nil, Busy: u.localBusy, Paired: u.localPaired}
	u.model = BuildModel(u.status, u.opts.Agent.Capabilities(), local, u.attention > 0, u.opts.Now())
	u.model.AutostartAvailable, u.model.AutostartOn = u.opts.Autostart != nil, u.autostartOn
	act := u.actions()
	if u.opts.Tray {
		if d, ok := u.fa.(desktop.App); ok {
			u.updateTray(d, act)
		}
	}
	if u.win != nil {
		u.win.show(u.model, act)
	}
}

// updateTray gives the tray the current menu and icon, only when they
// changed: the toolkit rebuilds the whole menu (new item IDs) each time, so
// an open menu would flicker and a click could land on an item just
// replaced.
func (u *UI) updateTray(d desktop.App, act Actions) {
	menu := u.model.Menu(act)
	if sig := menuSignature(menu); sig != u.lastMenuSig {
		u.lastMenu, u.lastMenuSig = menu, sig
		d.SetSystemTrayMenu(menu)
		announceTrayMenu()
	}
	if !u.trayIconSet || u.model.Tray != u.lastTray {
		u.trayIconSet, u.lastTray = true, u.model.Tray
		d.SetSystemTrayIcon(u.model.Tray.Icon())
	}
}

// menuSignature is what a menu shows: labels, check marks, disabled items
// and separators, depth first.
func menuSignature(m *fyne.Menu) string {
	var b strings.Builder
	var walk func(*fyne.Menu)
	walk = func(m *fyne.Menu) {
		for _, it := range m.Items {
			fmt.Fprintf(&b, "%q %t %t %t\n", it.Label, it.IsSeparator, it.Checked, it.Disabled)
			if it.ChildMenu != nil {
				b.WriteString("{\n")
				walk(it.ChildMenu)
				b.WriteString("}\n")
			}
		}
	}
	walk(m)
	return b.String()
}

// TrayMenu is the menu last given to the tray (nil without a tray).
func (u *UI) TrayMenu() *fyne.Menu { return u.lastMenu }

func (u *UI) actions() Actions {
	return Actions{
		Pair:          u.ShowWizard,
		SetCapability: u.setCapability,
		SetLocal:      u.setLocal,
		SetAutostart:  u.setAutostart,
		ShowCode:      u.ShowCode,
		Forget:        u.confirmForget,
		About:         u.ShowAbout,
		Quit: func() {
			// Logged, so that a quit that hangs shows it was asked for.
			u.log.Info("quitting: asked from the menu")
			u.fa.Quit()
		},
	}
}

func (u *UI) addAttention(delta int) {
	u.opts.Do(func() {
		u.attention += delta
		u.refresh()
	})
}

func (u *UI) notify(title, body string) {
	u.log.Info("notification", "title", title, "body", body)
	u.notes.notify(title, body)
}

func (u *UI) showError(what string, err error) {
	u.log.Warn(what, "err", err)
	if u.win != nil {
		dialog.ShowError(fmt.Errorf("%s: %w", what, err), u.win.w)
		return
	}
	u.notify("Palyra: "+what, err.Error())
}

// setCapability turns a capability on or off; a connected gateway hears at
// once.
func (u *UI) setCapability(name string, on bool) {
	if err := u.opts.Agent.SetCapabilityEnabled(name, on); err != nil {
		u.showError("changing "+name, err)
	}
	u.refresh()
}

// setAutostart turns starting at login on or off.
func (u *UI) setAutostart(on bool) {
	if u.opts.Autostart == nil {
		return
	}
	if err := u.opts.Autostart.Set(on); err != nil {
		u.showError("changing "+LabelAutostart, err)
	}
	u.autostartOn = u.opts.Autostart.Enabled()
	u.log.Info("start at login", "on", u.autostartOn)
	u.refresh()
}

// startAgent runs the agent in the background if it is paired (or its
// pairing request waits for approval, which Run collects) and not running
// already.
func (u *UI) startAgent() {
	if u.run != nil {
		return
	}
	collecting := u.awaitingApproval()
	if !collecting && !u.opts.Agent.Paired() {
		return
	}
	ctx, cancel := context.WithCancel(u.ctx)
	r := &runState{cancel: cancel, done: make(chan struct{}), collecting: collecting}
	u.run = r
	go func() {
		defer close(r.done)
		err := u.opts.Agent.Run(ctx)
		if err != nil {
			u.log.Warn("node agent stopped", "err", err)
		}
		u.opts.Do(func() {
			if u.run == r {
				u.run = nil
			}
			// Run ends with an error, unpaired, only when the request's
			// answer was no (or could not be read).
			if r.collecting && err != nil && !u.opts.Agent.Paired() {
				r.collecting = false
				u.collected(u.opts.Agent.Status(), err)
			}
		})
	}()
}

// stopAgent stops a running agent and calls then (on the Fyne goroutine)
// once it has stopped.
func (u *UI) stopAgent(then func()) {
	r := u.run
	u.run = nil
	if r == nil {
		then()
		return
	}
	r.cancel()
	go func() {
		<-r.done
		u.opts.Do(then)
	}()
}

// paired is called when a pairing succeeded: the agent runs with its new
// identity.
func (u *UI) paired() {
	u.localPaired = false
	u.stopAgent(u.startAgent)
}

// confirmForget asks, then forgets the gateway.
func (u *UI) confirmForget() {
	gw := nameOr(u.status.GatewayName, "the gateway")
	msg := fmt.Sprintf("Forget %s? This device disconnects and must be paired again to reconnect.\nIts device ID stays the same.", gw)
	if u.win == nil {
		// With only a tray, ask in a small window of its own.
		w := u.fa.NewWindow("Forget gateway")
		d := dialog.NewConfirm("Forget gateway", msg, func(ok bool) {
			w.Close()
			if ok {
				u.Forget()
			}
		}, w)
		w.Resize(fyne.NewSize(460, 200))
		w.Show()
		d.Show()
		return
	}
	dialog.ShowConfirm("Forget gateway", msg, func(ok bool) {
		if ok {
			u.Forget()
		}
	}, u.win.w)
}

// Forget stops the agent and removes its pairing.
func (u *UI) Forget() { u.forget(func() {}) }

// forget is Forget, then calls then.
func (u *UI) forget(then func()) {
	u.stopAgent(func() {
		if err := u.opts.Agent.Forget(); err != nil {
			u.showError("forgetting the gateway", err)
		}
		u.wasConnected = false
		u.localPaired = false
		u.refresh()
		then()
	})
}

// withdrawPairing forgets the pending pairing request of an unpaired
// device (the agent stops waiting for it first), then calls done. The
// gateway is not told: its admin sees the request until it expires, and an
// approval then reaches nobody. A paired device's pairing is left alone.
func (u *UI) withdrawPairing(done func()) {
	if u.opts.Agent.Paired() {
		done()
		return
	}
	u.log.Info("withdrawing the pending pairing request", "request_id", u.status.PairingRequestID)
	u.forget(done)
}

// setLocal starts or stops the local gateway.
func (u *UI) setLocal(on bool) {
	if u.localBusy || (on == (u.local != nil)) || u.opts.StartLocalGateway == nil {
		u.refresh()
		return
	}
	u.localBusy = true
	u.refresh()
	if !on {
		gw := u.local
		u.local = nil
		if u.stopRequests != nil {
			u.stopRequests()
			u.stopRequests = nil
		}
		if u.code != nil {
			u.code.w.Close()
		}
		// The device keeps its pairing: the agent goes offline and
		// retries until the gateway runs again.
		go func() {
			gw.Stop()
			u.opts.Do(func() {
				u.localBusy = false
				u.log.Info("local gateway stopped")
				u.refresh()
			})
		}()
		return
	}
	go func() {
		gw, err := u.opts.StartLocalGateway(u.ctx)
		if err != nil {
			u.opts.Do(func() {
				u.localBusy = false
				u.showError("starting the local gateway", err)
				u.startAgent()
				u.refresh()
			})
			return
		}
		u.log.Info("local gateway running", "address", gw.Address())
		pairErr := gw.PairAgent(u.ctx, u.opts.Agent)
		u.opts.Do(func() {
			u.local = gw
			u.localBusy = false
			reqCtx, stop := context.WithCancel(u.ctx)
			u.stopRequests = stop
			go u.watchRequests(reqCtx, gw)
			switch {
			case pairErr == nil:
				u.localPaired = true
				// Restart a running agent: it may be waiting out a long
				// backoff since the gateway stopped, and it dials the
				// addresses it read when it started (pairing again may
				// have changed them).
				u.stopAgent(u.startAgent)
			case errors.Is(pairErr, ErrPairedElsewhere):
				u.localPaired = false
				u.log.Info("not pairing with the local gateway", "err", pairErr)
				u.notify("Local gateway running", fmt.Sprintf("This device stays paired with %s; other devices can pair with the local gateway at %s.",
					nameOr(u.status.GatewayName, "another gateway"), gw.Address()))
				u.startAgent()
			default:
				u.showError("pairing with the local gateway", pairErr)
				u.startAgent()
			}
			u.refresh()
		})
	}()
}

// StopLocal stops the local gateway (if it runs) and waits; for quitting.
func (u *UI) StopLocal() {
	if u.stopRequests != nil {
		u.stopRequests()
	}
	if u.local != nil {
		u.local.Stop()
		u.local = nil
	}
}

func nameOr(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}
