package app

import (
	"context"
	"strings"
	"testing"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"

	"github.com/palyra/palyra-go/internal/version"
)

// TestAbout opens "About Palyra…" from the tray menu and reads the window:
// it names the version and commit the app was built from, as
// `palyra version` does, and whether the device is paired.
func TestAbout(t *testing.T) {
	ta := &trayApp{App: test.NewTempApp(t)}
	do := func(f func()) { uiMu.Lock(); defer uiMu.Unlock(); f() }
	u := New(ta, Options{Agent: newTestAgent(t), Tray: true, Now: func() time.Time { return now }, Do: do})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	do(func() { u.Start(ctx) })

	var text []string
	do(func() {
		item := menuItem(u.TrayMenu(), LabelAbout)
		if item == nil {
			t.Fatalf("no %q in the tray menu", LabelAbout)
		}
		item.Action()
		var w fyne.Window
		for _, win := range ta.Driver().AllWindows() {
			if win.Title() == AboutTitle {
				w = win
			}
		}
		if w == nil {
			t.Fatalf("no %q window after choosing %q", AboutTitle, LabelAbout)
		}
		text = labelTexts(w.Content())
	})
	all := strings.Join(text, "\n")
	if want := "Version " + version.Current().String(); !strings.Contains(all, want) {
		t.Errorf("the About window says:\n%s\nwant a line %q", all, want)
	}
	if !strings.Contains(all, "not paired") {
		t.Errorf("the About window of an unpaired device says:\n%s", all)
	}
}

func TestAboutLines(t *testing.T) {
	got := aboutLines(version.Build{Version: "1.2.3", Revision: "0123456789abcdef", Modified: true}, "laptop", "ABCDEF-123456")
	if got[0] != "Version 1.2.3 (commit 0123456789ab, modified)" || got[2] != "This device: laptop, ID ABCDEF-123456" {
		t.Errorf("About lines: %q", got)
	}
}

// labelTexts is the text of every label under o, depth first.
func labelTexts(o fyne.CanvasObject) []string {
	var out []string
	switch v := o.(type) {
	case *widget.Label:
		out = append(out, v.Text)
	case *fyne.Container:
		for _, c := range v.Objects {
			out = append(out, labelTexts(c)...)
		}
	}
	return out
}
