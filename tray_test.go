package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"

	"github.com/palyra/palyra-go/app"
	"github.com/palyra/palyra-go/node"
	"github.com/palyra/palyra-go/node/localapi"
)

// trayBarHeight is the tray host's bar, along the top of the screen; the
// app's icon is the only one in it, at its right end.
const trayBarHeight = 32

// TestDesktopTrayUnderXvfb runs the real binary beside a real tray host
// and a real notification daemon on a throwaway X server:
// gtk-sni-tray-standalone, a StatusNotifierItem host that draws the menu
// with libdbusmenu-gtk as the Xfce and MATE panels do, and dunst. The app
// starts unpaired; through the tray menu, with the keyboard as a person
// would, it turns on the local gateway (which pairs the app with it),
// toggles a capability and sees `palyra nodes describe` change, stops and
// starts the gateway again, and quits. It checks the icon of each state and
// the notifications on losing the connection and on revocation, and saves
// screenshots of the menu in each state to artifacts/desktop-app.
func TestDesktopTrayUnderXvfb(t *testing.T) {
	d := newDesktop(t)
	for _, tool := range []string{"gtk-sni-tray-standalone", "dunst"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the tray test needs haskell-gtk-sni-tray-utils and dunst (make test installs them)", tool)
		}
	}
	notes := d.watchNotifications()
	d.startNotificationDaemon()
	tray := d.startTrayHost()
	palyra := buildCLI(t, d.dir)

	gwDir := filepath.Join(d.dir, "gw")
	cfgDir := filepath.Join(d.dir, "home", "config", "palyra", "node")
	socket := filepath.Join(cfgDir, "node.sock")
	adminSocket := filepath.Join(gwDir, "admin.sock")
	p := d.start("tray", "--config-dir", cfgDir, "--gateway-dir", gwDir)
	waitState(t, socket, node.StateUnpaired, startDeadline, p)
	waitFor(t, stepDeadline, "the app to say it runs", func() bool { return strings.Contains(p.log(), "palyra-desktop running") })
	if !strings.Contains(p.log(), "tray=true") || strings.Contains(p.log(), "no system tray here") {
		t.Fatalf("the app did not use the tray:\n%s", p.log())
	}
	tray.waitItem()
	tray.waitIcon(app.TrayNotPaired)
	unpaired := tray.open()
	if !strings.HasPrefix(unpaired[0].Label, "Not paired — ") || find(t, unpaired, app.LabelForget).state() != "disabled" ||
		find(t, unpaired, app.LabelLocal).state() != "enabled" || has(unpaired, app.LabelShowCode) {
		t.Errorf("menu before pairing: %+v", unpaired)
	}
	d.screenshot("tray-menu-not-paired")
	tray.close()

	// "Run local gateway" starts the gateway and pairs with it, no typing.
	tray.activate(app.LabelLocal)
	st := waitState(t, socket, node.StateConnected, startDeadline, p)
	tray.waitIcon(app.TrayConnected)

	menu := tray.open()
	wantStatus := "Connected to " + st.GatewayName + " as " + st.DeviceName
	if menu[0].Label != wantStatus || menu[0].Enabled {
		t.Errorf("status line %+v, want %q (disabled)", menu[0], wantStatus)
	}
	for label, want := range map[string]string{
		app.LabelPair: "enabled", app.LabelCapabilities: "disabled", "Read system information": "checked",
		"Read the clipboard": "enabled", "Run allowed programs (asks)": "enabled", app.LabelLocal: "checked",
		app.LabelShowCode: "enabled", app.LabelAutostart: "enabled", app.LabelForget: "enabled", app.LabelAbout: "enabled", app.LabelQuit: "enabled",
	} {
		if got := find(t, menu, label).state(); got != want {
			t.Errorf("%q is %s, want %s", label, got, want)
		}
	}
	d.screenshot("tray-menu-connected")
	tray.close()

	// A capability toggled from the tray reaches the gateway at once.
	if describeEnabled(t, palyra, adminSocket, st.DeviceID, "clipboard.read") {
		t.Fatal("the gateway sees clipboard.read on before the test turned it on")
	}
	tray.activate("Read the clipboard")
	waitFor(t, stepDeadline, "`palyra nodes describe` to show clipboard.read on", func() bool {
		return describeEnabled(t, palyra, adminSocket, st.DeviceID, "clipboard.read")
	})
	if got := find(t, tray.open(), "Read the clipboard").state(); got != "checked" {
		t.Errorf("\u201cRead the clipboard\u201d is %s in the menu after turning it on", got)
	}
	d.screenshot("tray-menu-capability-on")
	tray.close()

	// Stopping the local gateway: the connection that was up is lost, and
	// a notification says so.
	tray.activate(app.LabelLocal)
	notes.wait(t, "Palyra is offline")
	// The agent goes on trying, and the menu changes with each attempt
	// (offline, connecting, offline): capture the menu while offline,
	// between attempts, with the offline icon.
	offlineColour := iconColour(t, app.TrayOffline)
	waitFor(t, startDeadline, "a capture of the tray menu offline, between attempts", func() bool {
		before, ok := offlineUntil(t, socket)
		if !ok {
			return false
		}
		menu := tray.open()
		img := d.screenshot("tray-menu-offline")
		after, ok := offlineUntil(t, socket)
		tray.close()
		if !ok || !after.Equal(before) {
			return false
		}
		if !strings.HasPrefix(menu[0].Label, "Offline from "+st.GatewayName+" — retrying at ") {
			t.Fatalf("status line while offline: %q", menu[0].Label)
		}
		if find(t, menu, app.LabelLocal).state() != "enabled" || has(menu, app.LabelShowCode) {
			t.Fatalf("menu with the local gateway stopped: %+v", menu)
		}
		return near(trayIconColour(img), offlineColour)
	})
	// Turning it on again. The menu is rebuilt at each connection attempt
	// here, so this click goes the way the host sends one
	// (com.canonical.dbusmenu Event "clicked"), to the item read just
	// before, and again should a rebuild have retired that item first.
	runs := func() int { return strings.Count(p.log(), "local gateway running") }
	first := runs()
	waitFor(t, stepDeadline, "the local gateway to run again", func() bool {
		if runs() > first {
			return true
		}
		tray.clickUnchecked(app.LabelLocal)
		return poll(3*time.Second, func() bool { return runs() > first })
	})
	waitState(t, socket, node.StateConnected, stepDeadline, p)
	tray.waitIcon(app.TrayConnected)

	// Pairing again from the tray, in the wizard, with a PIN from `palyra
	// pairing code`: the request comes up in the app (the local gateway's
	// requests do) and is approved there; a notification says how the
	// pairing ended.
	var code struct {
		PIN string `json:"pin"`
	}
	if out, err := palyra.run("pairing", "code", "--json", "--admin-socket", adminSocket); err != nil || json.Unmarshal(out, &code) != nil {
		t.Fatalf("palyra pairing code: %v\n%s", err, out)
	}
	tray.activate(app.LabelPair)
	wiz := d.window("Pair with a gateway")
	d.xdotool("windowfocus", "--sync", wiz)
	d.xdotool("type", "--delay", "20", st.Gateways[0])
	d.xdotool("key", "Tab")
	d.xdotool("type", "--delay", "20", code.PIN)
	d.xdotool("key", "Tab", "space")
	req := d.window("Pairing request")
	pending := waitState(t, socket, node.StatePending, stepDeadline, p)
	notes.wait(t, "Pairing request from "+st.DeviceName)
	waitFor(t, stepDeadline, "the request in `palyra pairing list`", func() bool {
		out, err := palyra.run("pairing", "list", "--json", "--admin-socket", adminSocket)
		var reqs []struct {
			State string `json:"state"`
			Code  string `json:"verification_code"`
		}
		if err != nil || json.Unmarshal(out, &reqs) != nil {
			t.Fatalf("palyra pairing list: %v\n%s", err, out)
		}
		return len(reqs) == 1 && reqs[0].State == "pending" && reqs[0].Code == pending.VerificationCode
	})
	d.xdotool("windowmove", "--sync", req, "0", "420")
	d.screenshot("tray-pairing-request")
	// Approve from the keyboard: Reject, Approve.
	d.pressClosing(req, "Pairing request", "Tab", "Tab", "space")
	notes.wait(t, "Palyra: Paired")
	if again := waitState(t, socket, node.StateConnected, stepDeadline, p); again.DeviceID != st.DeviceID {
		t.Fatalf("paired again as %s, was %s", again.DeviceID, st.DeviceID)
	}
	d.screenshot("tray-pairing-wizard-paired")
	// Close the wizard from the keyboard: Close has it now.
	d.pressClosing(wiz, "Pair with a gateway", "space")

	// Revoked at the gateway: a notification, the attention icon, and the
	// menu says when the gateway revoked this device and what to do next.
	if out, err := palyra.run("devices", "revoke", st.DeviceID, "--admin-socket", adminSocket); err != nil {
		t.Fatalf("palyra devices revoke: %v\n%s", err, out)
	}
	notes.wait(t, "This device was revoked")
	after := waitState(t, socket, node.StateRevoked, stepDeadline, p)
	tray.waitIcon(app.TrayAttention)
	revoked := tray.open()
	if want := "Revoked by " + st.GatewayName + " on " + after.RevokedAt.Local().Format("2006-01-02") + " — forget the gateway or pair again"; after.RevokedAt.IsZero() || revoked[0].Label != want || !revoked[1].Separator {
		t.Errorf("menu after revocation: %+v, want the status line %q and no detail line", revoked[:2], want)
	}
	d.screenshot("tray-menu-revoked")
	tray.close()

	tray.activate(app.LabelQuit)
	select {
	case <-p.done:
		if p.err != nil {
			t.Fatalf("palyra-desktop exited with %v after Quit:\n%s", p.err, p.log())
		}
		// A quit from the menu is not a signal, and nothing is asked of
		// the toolkit once it stopped.
		if log := p.log(); strings.Contains(log, "quitting on signal") || strings.Contains(log, "Error in Fyne call thread") {
			t.Errorf("palyra-desktop's log after Quit from the menu:\n%s", log)
		}
	case <-time.After(stepDeadline):
		t.Fatalf("palyra-desktop still runs %s after Quit", stepDeadline)
	}
}

// trayHost is gtk-sni-tray-standalone on the test's bus and screen.
type trayHost struct {
	d    *desktopEnv
	conn *dbus.Conn
	// item is the app's bus name, once it registered its icon.
	item string
	// revision is the menu's layout revision when menu last read it.
	revision uint32
}

// call calls method on obj, giving up after a few seconds.
func (h *trayHost) call(obj dbus.BusObject, method string, args ...any) *dbus.Call {
	ctx, cancel := context.WithTimeout(h.d.t.Context(), 5*time.Second)
	defer cancel()
	return obj.CallWithContext(ctx, method, 0, args...)
}

// startTrayHost starts the tray host, with its own StatusNotifierWatcher,
// and waits until the watcher is on the bus (the app looks for it once,
// at start).
//
// The host has a start-up race of its own: it may ask its own watcher for
// something before the watcher is on the bus, and exit with D-Bus's
// UnknownObject. Such a start is tried again, a bounded number of times;
// any exit after the watcher is up fails the test.
func (d *desktopEnv) startTrayHost() *trayHost {
	d.t.Helper()
	conn := d.busConn()
	const starts = 3
	for i := 1; ; i++ {
		cmd := exec.Command("gtk-sni-tray-standalone", "--top", "--end", "--watcher",
			"--size", fmt.Sprint(trayBarHeight), "--color", "#2b2b2b")
		cmd.Env = d.env
		ok, out := d.startHelper(cmd, func() bool { return hostRegistered(conn) })
		if ok {
			return &trayHost{d: d, conn: conn}
		}
		if i == starts || !strings.Contains(out, "UnknownObject") {
			d.t.Fatalf("gtk-sni-tray-standalone exited before its host registered with its watcher (start %d of %d):\n%s", i, starts, out)
		}
		d.t.Logf("gtk-sni-tray-standalone exited as it started (start %d of %d), starting it again:\n%s", i, starts, out)
	}
}

// hostRegistered reports whether a tray host has registered with the
// watcher on conn's bus. The standalone host starts its watcher in a thread
// of its own and then asks it for its items: should the watcher own its
// name but not yet serve its object, that call fails (UnknownObject) and
// the host exits. So the watcher's name on the bus does not mean the host
// is up; its registration does, as the host registers last.
func hostRegistered(conn *dbus.Conn) bool {
	if !hasBusName(conn, "org.kde.StatusNotifierWatcher") {
		return false
	}
	v, err := conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher").
		GetProperty("org.kde.StatusNotifierWatcher.IsStatusNotifierHostRegistered")
	registered, _ := v.Value().(bool)
	return err == nil && registered
}

// hasBusName reports whether name has an owner on conn's bus.
func hasBusName(conn *dbus.Conn, name string) bool {
	var has bool
	err := conn.BusObject().Call("org.freedesktop.DBus.NameHasOwner", 0, name).Store(&has)
	return err == nil && has
}

// busConn is a connection to the test's bus, closed when the test ends.
func (d *desktopEnv) busConn() *dbus.Conn {
	d.t.Helper()
	conn, err := dbus.Connect(d.bus)
	if err != nil {
		d.t.Fatalf("connecting to the test bus: %v", err)
	}
	d.t.Cleanup(func() { conn.Close() })
	return conn
}

// waitItem waits until the app's icon is registered with the watcher.
func (h *trayHost) waitItem() {
	h.d.t.Helper()
	watcher := h.conn.Object("org.kde.StatusNotifierWatcher", "/StatusNotifierWatcher")
	waitFor(h.d.t, stepDeadline, "the app's tray icon to register", func() bool {
		v, err := watcher.GetProperty("org.kde.StatusNotifierWatcher.RegisteredStatusNotifierItems")
		items, _ := v.Value().([]string)
		if err != nil || len(items) != 1 {
			return false
		}
		// An entry is a bus name, maybe followed by the item's path.
		h.item, _, _ = strings.Cut(items[0], "/")
		return true
	})
}

// menuItem is one item of the menu the app exports over D-Bus
// (com.canonical.dbusmenu), which is what the host draws.
type menuItem struct {
	ID                          int32
	Label                       string
	Separator, Enabled, Visible bool
	Checked                     bool
}

// state is how the host draws the item: greyed out, with a check mark, or
// plain.
func (m menuItem) state() string {
	switch {
	case !m.Enabled:
		return "disabled"
	case m.Checked:
		return "checked"
	}
	return "enabled"
}

// selectable is whether the keyboard can reach the item in the host's menu.
func (m menuItem) selectable() bool { return !m.Separator && m.Enabled && m.Visible }

// menuObject is the app's exported menu.
func (h *trayHost) menuObject() dbus.BusObject {
	h.d.t.Helper()
	var v dbus.Variant
	err := h.call(h.conn.Object(h.item, "/StatusNotifierItem"), "org.freedesktop.DBus.Properties.Get", "org.kde.StatusNotifierItem", "Menu").Store(&v)
	if err != nil {
		h.d.t.Fatalf("reading the tray item's menu path: %v", err)
	}
	path, _ := v.Value().(dbus.ObjectPath)
	return h.conn.Object(h.item, path)
}

// menu reads the app's top-level menu.
func (h *trayHost) menu() []menuItem {
	h.d.t.Helper()
	var rev uint32
	var root []any
	if err := h.call(h.menuObject(), "com.canonical.dbusmenu.GetLayout", int32(0), int32(1), []string{}).Store(&rev, &root); err != nil {
		h.d.t.Fatalf("reading the tray menu: %v", err)
	}
	if len(root) != 3 {
		h.d.t.Fatalf("tray menu layout: %v", root)
	}
	h.revision = rev
	var items []menuItem
	for _, c := range root[2].([]dbus.Variant) {
		fields, _ := c.Value().([]any)
		if len(fields) != 3 {
			h.d.t.Fatalf("tray menu item: %v", c)
		}
		props, _ := fields[1].(map[string]dbus.Variant)
		prop := func(name string, def any) any {
			if v, ok := props[name]; ok {
				return v.Value()
			}
			return def
		}
		id, _ := fields[0].(int32)
		items = append(items, menuItem{
			ID:        id,
			Label:     fmt.Sprint(prop("label", "")),
			Separator: prop("type", "standard") == "separator",
			Enabled:   prop("enabled", true) == true,
			Visible:   prop("visible", true) == true,
			Checked:   prop("toggle-type", "") == "checkmark" && prop("toggle-state", int32(0)) == int32(1),
		})
	}
	if len(items) == 0 {
		h.d.t.Fatal("the tray menu is empty")
	}
	return items
}

func find(t *testing.T, items []menuItem, label string) menuItem {
	t.Helper()
	for _, it := range items {
		if it.Label == label {
			return it
		}
	}
	t.Fatalf("no %q in the tray menu: %+v", label, items)
	return menuItem{}
}

func has(items []menuItem, label string) bool {
	for _, it := range items {
		if it.Label == label {
			return true
		}
	}
	return false
}

// open clicks the tray icon, waits for the menu on the screen and returns
// the menu as exported.
func (h *trayHost) open() []menuItem {
	h.d.t.Helper()
	items := h.menu()
	w, _ := h.screenSize()
	// The host may be busy fetching a menu that just changed (a new state)
	// and drop a click; a person would click again, and so does the test,
	// a bounded number of times.
	const clicks = 3
	for i := range clicks {
		h.d.xdotool("mousemove", fmt.Sprint(w-trayBarHeight/2), fmt.Sprint(trayBarHeight/2), "click", "1")
		if poll(stepDeadline/clicks, func() bool { return h.menuShown(h.capture()) }) {
			return items
		}
		h.d.t.Logf("click %d of %d on the tray icon did not open its menu", i+1, clicks)
	}
	h.saveCapture("tray-menu-did-not-open")
	h.d.t.Fatalf("timed out after %s waiting for the tray menu on the screen", stepDeadline)
	return nil
}

// offlineUntil is when the agent, offline, tries next; ok is false unless
// it is offline and waiting.
func offlineUntil(t *testing.T, socket string) (time.Time, bool) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	st, err := localapi.Status(ctx, socket)
	return st.RetryAt, err == nil && st.State == node.StateOffline && !st.RetryAt.IsZero()
}

// clickUnchecked sends the check item labelled label a click, as the host
// does, if it is enabled and not checked.
func (h *trayHost) clickUnchecked(label string) {
	h.d.t.Helper()
	it := find(h.d.t, h.menu(), label)
	if it.Checked || !it.Enabled {
		return
	}
	if err := h.call(h.menuObject(), "com.canonical.dbusmenu.Event", it.ID, "clicked", dbus.MakeVariant(""), uint32(0)).Err; err != nil {
		h.d.t.Fatalf("clicking %q: %v", label, err)
	}
}

// close dismisses the open menu.
func (h *trayHost) close() {
	h.d.t.Helper()
	h.d.xdotool("key", "Escape")
	h.waitClosed()
}

func (h *trayHost) waitClosed() {
	h.d.t.Helper()
	waitFor(h.d.t, stepDeadline, "the tray menu to close", func() bool { return !h.menuShown(h.capture()) })
}

// activate opens the menu and picks the item with the keyboard: Down to
// it (the host skips separators and disabled items), then Return. Should
// the menu have been rebuilt meanwhile (the selection would not be the
// item counted to), it closes the menu instead and tries again.
func (h *trayHost) activate(label string) {
	h.d.t.Helper()
	for range 3 {
		items := h.open()
		rev := h.revision
		downs, found := 0, false
		for _, it := range items {
			if it.selectable() {
				downs++
				if found = it.Label == label; found {
					break
				}
			}
		}
		if !found {
			h.d.t.Fatalf("no selectable %q in the tray menu: %+v", label, items)
		}
		keys := []string{"key", "--delay", "50"}
		for range downs {
			keys = append(keys, "Down")
		}
		h.d.xdotool(keys...)
		if h.menu(); h.revision != rev {
			h.close()
			continue
		}
		h.d.xdotool("key", "Return")
		h.waitClosed()
		return
	}
	h.d.t.Fatalf("the tray menu kept changing while picking %q", label)
}

// menuShown is whether the host's menu is open: its light background
// below the icon, at the screen's right edge, where the screen is
// otherwise black.
func (h *trayHost) menuShown(img image.Image) bool {
	b := img.Bounds()
	r, g, bl, _ := img.At(b.Max.X-8, trayBarHeight+12).RGBA()
	return r > 0xd000 && g > 0xd000 && bl > 0xd000
}

func (h *trayHost) screenSize() (int, int) {
	b := h.capture().Bounds()
	return b.Dx(), b.Dy()
}

// saveCapture saves the screen as it is now to the artifacts, for a test
// about to fail.
func (h *trayHost) saveCapture(name string) {
	h.d.t.Helper()
	path := filepath.Join(artifactDir, name+".png")
	var b bytes.Buffer
	if err := png.Encode(&b, h.capture()); err == nil && os.WriteFile(path, b.Bytes(), 0o644) == nil {
		h.d.t.Logf("the screen now: %s", path)
	}
}

// capture takes one screenshot, not saved.
func (h *trayHost) capture() image.Image {
	h.d.t.Helper()
	ctx, cancel := context.WithTimeout(h.d.t.Context(), stepDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, "import", "-window", "root", "png:-")
	cmd.Env = h.d.env
	out, err := cmd.Output()
	if err != nil {
		h.d.t.Fatalf("capturing the screen: %v", err)
	}
	img, err := png.Decode(bytes.NewReader(out))
	if err != nil {
		h.d.t.Fatalf("reading a screen capture: %v", err)
	}
	return img
}

// waitIcon waits until the tray shows the icon of state s.
func (h *trayHost) waitIcon(s app.TrayState) {
	h.d.t.Helper()
	want := iconColour(h.d.t, s)
	var got color.NRGBA
	if !poll(stepDeadline, func() bool {
		got = trayIconColour(h.capture())
		return near(got, want)
	}) {
		h.d.t.Fatalf("the tray icon's colour is %v, not %v of the %s icon", got, want, s)
	}
}

// iconColour is the main colour of state s's icon, and trayIconColour
// that of the icon on the screen (the only one in the host's bar, at its
// right end): the icons differ in it.
func iconColour(t *testing.T, s app.TrayState) color.NRGBA {
	t.Helper()
	img, err := png.Decode(bytes.NewReader(s.Icon().Content()))
	if err != nil {
		t.Fatalf("decoding the %s icon: %v", s, err)
	}
	return dominant(img, img.Bounds())
}

func trayIconColour(screen image.Image) color.NRGBA {
	b := screen.Bounds()
	return dominant(screen, image.Rect(b.Max.X-trayBarHeight, 0, b.Max.X, trayBarHeight))
}

// dominant is the most common colour in r of img, leaving out what is
// nearly transparent, grey-black (the bar) or white (the icon's mark).
func dominant(img image.Image, r image.Rectangle) color.NRGBA {
	counts := map[color.NRGBA]int{}
	var best color.NRGBA
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := color.NRGBAModel.Convert(img.At(x, y)).(color.NRGBA)
			if c.A < 0xc0 || (c.R < 0x40 && c.G < 0x40 && c.B < 0x40) || (c.R > 0xe0 && c.G > 0xe0 && c.B > 0xe0) {
				continue
			}
			c = color.NRGBA{c.R &^ 0xf, c.G &^ 0xf, c.B &^ 0xf, 0xff}
			counts[c]++
			if counts[c] > counts[best] {
				best = c
			}
		}
	}
	return best
}

func near(a, b color.NRGBA) bool {
	close := func(x, y uint8) bool { return max(x, y)-min(x, y) <= 0x10 }
	return close(a.R, b.R) && close(a.G, b.G) && close(a.B, b.B)
}

// notificationLog is every notification sent on the test's bus, read by
// monitoring the bus (the daemon shows them on the screen too).
type notificationLog struct {
	mu      sync.Mutex
	seen    []string
	changed chan struct{}
}

// watchNotifications becomes a monitor of the bus for Notify calls.
func (d *desktopEnv) watchNotifications() *notificationLog {
	d.t.Helper()
	conn := d.busConn()
	rule := "type='method_call',interface='org.freedesktop.Notifications',member='Notify'"
	if err := conn.BusObject().Call("org.freedesktop.DBus.Monitoring.BecomeMonitor", 0, []string{rule}, uint32(0)).Err; err != nil {
		d.t.Fatalf("monitoring the test bus: %v", err)
	}
	msgs := make(chan *dbus.Message, 64)
	conn.Eavesdrop(msgs)
	n := &notificationLog{changed: make(chan struct{}, 1)}
	go func() {
		for m := range msgs {
			if len(m.Body) < 5 {
				continue
			}
			summary, _ := m.Body[3].(string)
			body, _ := m.Body[4].(string)
			n.mu.Lock()
			n.seen = append(n.seen, summary+": "+body)
			n.mu.Unlock()
			select {
			case n.changed <- struct{}{}:
			default:
			}
		}
	}()
	return n
}

// wait waits for a notification titled summary.
func (n *notificationLog) wait(t *testing.T, summary string) {
	t.Helper()
	deadline := time.After(stepDeadline)
	for {
		n.mu.Lock()
		seen := append([]string(nil), n.seen...)
		n.mu.Unlock()
		for _, s := range seen {
			if strings.HasPrefix(s, summary+": ") {
				return
			}
		}
		select {
		case <-n.changed:
		case <-deadline:
			t.Fatalf("no notification %q within %s; seen: %q", summary, stepDeadline, seen)
		}
	}
}

// startNotificationDaemon starts dunst, showing notifications at the
// bottom right, and waits until it is on the bus.
func (d *desktopEnv) startNotificationDaemon() {
	d.t.Helper()
	conf := filepath.Join(d.dir, "dunstrc")
	const dunstrc = "[global]\n    origin = bottom-right\n    offset = 16x16\n    width = 420\n    font = Sans 10\n    frame_width = 1\n"
	if err := os.WriteFile(conf, []byte(dunstrc), 0o600); err != nil {
		d.t.Fatal(err)
	}
	cmd := exec.Command("dunst", "-config", conf)
	cmd.Env = d.env
	d.background(cmd)
	d.waitBusName("org.freedesktop.Notifications", "dunst")
}

// cli is the palyra command, built for the test.
type cli struct{ bin string }

func buildCLI(t *testing.T, dir string) cli {
	return cli{bin: goBuild(t, filepath.Join(dir, "palyra"), "./cmd/palyra", false)}
}

func (c cli) run(args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), stepDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, c.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.Bytes(), err
}

// describeEnabled is whether `palyra nodes describe` shows capability
// name on for device.
func describeEnabled(t *testing.T, c cli, adminSocket, device, name string) bool {
	t.Helper()
	out, err := c.run("nodes", "describe", device, "--json", "--admin-socket", adminSocket)
	if err != nil {
		t.Fatalf("palyra nodes describe: %v\n%s", err, out)
	}
	var d struct {
		Capabilities []struct {
			Name    string `json:"name"`
			Enabled bool   `json:"enabled"`
		} `json:"capabilities"`
	}
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("palyra nodes describe --json: %v\n%s", err, out)
	}
	for _, cp := range d.Capabilities {
		if cp.Name == name {
			return cp.Enabled
		}
	}
	t.Fatalf("palyra nodes describe lists no %s:\n%s", name, out)
	return false
}
