package app

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"

	"github.com/palyra/palyra-go/app/autostart"
)

// menuItem is the item of m labelled label, or nil.
func menuItem(m *fyne.Menu, label string) *fyne.MenuItem {
	for _, it := range m.Items {
		if it.Label == label {
			return it
		}
	}
	return nil
}

// TestTrayStartAtLogin toggles "Start at login" in the tray menu of a real
// agent and sees the autostart entry written, then removed.
func TestTrayStartAtLogin(t *testing.T) {
	ta := &trayApp{App: test.NewTempApp(t)}
	agent := newTestAgent(t)
	entry := autostart.Entry{Path: autostart.PathIn(filepath.Join(t.TempDir(), "config")), Exec: "/opt/palyra/palyra-desktop",
		Args: []string{"--local-gateway"}}
	mu := &uiMu // one for every test UI: Fyne's caches are global
	do := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	u := New(ta, Options{Agent: agent, Tray: true, Autostart: entry, Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })

	var item *fyne.MenuItem
	do(func() { item = menuItem(u.TrayMenu(), LabelAutostart) })
	if item == nil || item.Checked {
		t.Fatalf("%q before it was turned on: %+v (it is off by default)", LabelAutostart, item)
	}
	if _, err := os.Stat(entry.Path); !os.IsNotExist(err) {
		t.Fatalf("an autostart entry exists before it was turned on: %v", err)
	}
	do(item.Action)
	b, err := os.ReadFile(entry.Path)
	if err != nil {
		t.Fatalf("no autostart entry after turning %q on: %v", LabelAutostart, err)
	}
	if !strings.Contains(string(b), "\nExec=/opt/palyra/palyra-desktop --local-gateway\n") {
		t.Errorf("the entry does not start the app as it runs:\n%s", b)
	}
	do(func() { item = menuItem(u.TrayMenu(), LabelAutostart) })
	if !item.Checked {
		t.Fatalf("%q is not checked after turning it on", LabelAutostart)
	}
	do(item.Action)
	if _, err := os.Stat(entry.Path); !os.IsNotExist(err) {
		t.Fatalf("the autostart entry is still there after turning it off: %v", err)
	}
	do(func() { item = menuItem(u.TrayMenu(), LabelAutostart) })
	if item.Checked {
		t.Errorf("%q is still checked after turning it off", LabelAutostart)
	}
}

// TestWindowStartAtLogin does the same from the main window's check, and
// sees an entry already there shown as on at start.
func TestWindowStartAtLogin(t *testing.T) {
	test.NewTempApp(t)
	agent := newTestAgent(t)
	entry := autostart.Entry{Path: autostart.PathIn(t.TempDir()), Exec: "/opt/palyra/palyra-desktop"}
	if err := entry.Set(true); err != nil {
		t.Fatal(err)
	}
	mu := &uiMu // one for every test UI: Fyne's caches are global
	do := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	u := New(fyne.CurrentApp(), Options{Agent: agent, Autostart: entry, Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })
	mu.Lock()
	defer mu.Unlock()
	if !u.win.auto.Visible() || !u.win.auto.Checked {
		t.Fatalf("%q: visible %v, checked %v; the entry exists", LabelAutostart, u.win.auto.Visible(), u.win.auto.Checked)
	}
	test.Tap(u.win.auto)
	if _, err := os.Stat(entry.Path); !os.IsNotExist(err) {
		t.Fatalf("the autostart entry is still there after unchecking %q: %v", LabelAutostart, err)
	}
	test.Tap(u.win.auto)
	if !entry.Enabled() || !u.win.auto.Checked {
		t.Errorf("checking %q again: entry %v, check %v", LabelAutostart, entry.Enabled(), u.win.auto.Checked)
	}
}

// TestStartAtLoginHidden: without an autostart (macOS, Windows) there is
// no such item.
func TestStartAtLoginHidden(t *testing.T) {
	test.NewTempApp(t)
	mu := &uiMu // one for every test UI: Fyne's caches are global
	do := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	u := New(fyne.CurrentApp(), Options{Agent: newTestAgent(t), Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })
	mu.Lock()
	defer mu.Unlock()
	if u.win.auto.Visible() || menuItem(u.Model().Menu(u.actions()), LabelAutostart) != nil {
		t.Error("\u201cStart at login\u201d is offered where the app cannot start at login")
	}
}

// TestTrayShowMain: a later launch of a tray app opens the main window
// (once, however often it is asked), showing the same status as the tray.
func TestTrayShowMain(t *testing.T) {
	ta := &trayApp{App: test.NewTempApp(t)}
	mu := &uiMu // one for every test UI: Fyne's caches are global
	do := func(f func()) { mu.Lock(); defer mu.Unlock(); f() }
	u := New(ta, Options{Agent: newTestAgent(t), Tray: true, Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })
	mu.Lock()
	defer mu.Unlock()
	if u.Window() != nil {
		t.Fatal("a tray app has a main window before anyone asked")
	}
	u.ShowMain()
	w := u.Window()
	if w == nil || u.win.status.Text != u.Model().Status {
		t.Fatalf("after ShowMain: window %v, status %q", w, u.win.status.Text)
	}
	u.ShowMain()
	if u.Window() != w {
		t.Error("a second ShowMain made another window")
	}
}
