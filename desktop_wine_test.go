//go:build wine

package main

import (
	"context"
	"fmt"
	"image"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/app"
	"github.com/palyra/palyra-go/internal/oneinstance"
	"github.com/palyra/palyra-go/internal/testwine"
)

// TestDesktopUnderWine builds palyra-desktop.exe for Windows with cgo
// (mingw-w64: Fyne's GLFW and OpenGL driver) and runs it under Wine on a
// throwaway Xvfb, in a private prefix, with its defaults (the config dir
// under LOCALAPPDATA, the device key for Credential Manager). On Windows
// the app takes a tray for granted, so it starts with only its icon in
// Wine's system tray and no window. A second launch finds it by the lock
// and endpoint file of internal/oneinstance, exits 0 saying so, and the
// first shows its main window; "About Palyra…" opens from there. Both are
// captured from the X server (Fyne's own canvas capture comes back empty
// under Wine) and checked for drawn content. Quit ends the app cleanly,
// taking its endpoints with it, and the next launch is the instance again.
// When Explorer restarts (stood in for by internal/testwine/explorerrestart:
// Wine's explorer never announces a restart), the icon comes back.
//
// Not here, for Wine: QUIC (no UDP), so the local gateway, which binds a
// UDP port, is not started.
func TestDesktopUnderWine(t *testing.T) {
	exe := testwine.BuildCgoExe(t, ".", "palyra-desktop")
	d := newDisplay(t)
	w := testwine.NewOnDisplay(t, d.display)
	launch := func(name string) *appProcess {
		return d.startCmd(name, w.Command(t.Context(), exe))
	}

	first := launch("wine-first")
	waitLog(t, first, "palyra-desktop running")
	if !strings.Contains(first.log(), "tray=true") {
		t.Fatalf("palyra-desktop.exe does not run in the tray:\n%s", first.log())
	}
	// Wine shows its tray window (there is no X tray here) only while a
	// program has an icon in it.
	tray := d.window("Wine System Tray")
	if ids, err := d.windows("Palyra"); err != nil || len(ids) != 0 {
		t.Fatalf("the tray app shows its main window before anyone asked: %v, %v", ids, err)
	}
	checkDrawn(t, d.screenshot("windows-tray"), d.geometry(tray), "Wine's system tray with the app's icon")

	// Explorer restarts: the new one's tray is empty, and it asks every
	// program for its icon again (TaskbarCreated), which fyne.io/systray
	// answers ("SystrayClass" and icon ID 100 are its window's and icon's).
	explorer := testwine.BuildExe(t, "github.com/palyra/palyra-go/internal/testwine/explorerrestart")
	restart := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), stepDeadline)
		defer cancel()
		if out, err := w.Command(ctx, explorer, args...).CombinedOutput(); err != nil {
			t.Fatalf("explorerrestart %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	restart("forget", "SystrayClass", "100")
	waitFor(t, stepDeadline, "Wine's system tray to close with the app's icon gone", func() bool {
		ids, err := d.windows("Wine System Tray")
		return err == nil && len(ids) == 0
	})
	restart("announce")
	tray = d.window("Wine System Tray")
	checkDrawn(t, d.screenshot("windows-tray-after-explorer-restart"), d.geometry(tray),
		"Wine's system tray with the app's icon after TaskbarCreated")
	configDirs, _ := filepath.Glob(filepath.Join(w.Prefix, "drive_c", "users", "*", "AppData", "Local", "Palyra", "node"))
	if len(configDirs) != 1 {
		t.Fatalf("the app's config dir in the prefix: %v", configDirs)
	}
	cfgDir := configDirs[0]
	for _, f := range []string{oneinstance.LockFile, "desktop.endpoint", "node.endpoint"} {
		if _, err := os.Stat(filepath.Join(cfgDir, f)); err != nil {
			t.Errorf("the running app has no %s: %v", f, err)
		}
	}

	// The second launch: it asks the first to show itself and exits.
	ctx, cancel := context.WithTimeout(t.Context(), stepDeadline)
	defer cancel()
	out, err := w.Command(ctx, exe).CombinedOutput()
	if err != nil {
		t.Fatalf("the second launch: %v\n%s", err, out)
	}
	if !regexp.MustCompile(`^palyra-desktop is already running for C:\\users\\[^\\]+\\AppData\\Local\\Palyra\\node; brought its window forward\r?\n$`).Match(out) {
		t.Errorf("the second launch said:\n%s", out)
	}
	win := d.window("Palyra")
	img := d.screenshot("windows-main-window")
	r := d.geometry(win)
	if r.Dx() != 600 || r.Dy() != 700 {
		t.Errorf("the main window is %dx%d, want the 600x700 app/window.go asks for", r.Dx(), r.Dy())
	}
	checkDrawn(t, img, r, "the main window")
	if strings.Count(first.log(), "palyra-desktop running") != 1 {
		t.Errorf("the first app started twice:\n%s", first.log())
	}

	// About, from the main window's keyboard: with nothing focused,
	// shift+Tab goes to the last button, Quit, and again to About.
	d.press(win, "shift+Tab", "shift+Tab", "space")
	about := d.window(app.AboutTitle)
	// Where Wine puts it, over the main window (it puts a moved window
	// back): it is the About window that is drawn there, not what was.
	after := d.screenshot("windows-about")
	ar := d.geometry(about)
	checkDrawn(t, after, ar, "the About window")
	changed := 0
	for y := ar.Min.Y; y < ar.Max.Y; y++ {
		for x := ar.Min.X; x < ar.Max.X; x++ {
			if img.At(x, y) != after.At(x, y) {
				changed++
			}
		}
	}
	share := float64(changed) / float64(ar.Dx()*ar.Dy())
	t.Logf("the About window changed %.1f%% of the pixels the main window showed there", 100*share)
	if share < 0.2 {
		t.Errorf("the About window at %v changed only %.1f%% of what the main window showed there", ar, 100*share)
	}

	// Quit, clicked: keys typed once About is open reached neither
	// window here (with no window manager, Wine does not take X's focus
	// change for an activation of the other window). The button is the
	// main window's last, in its bottom right corner. The app ends, and
	// its endpoints with it.
	d.xdotool("mousemove", "--window", win, strconv.Itoa(r.Dx()-32), strconv.Itoa(r.Dy()-27), "click", "1")
	waitExit(t, first)
	if !strings.Contains(first.log(), "quitting: asked from the menu") {
		t.Errorf("palyra-desktop ended, but not by Quit:\n%s", first.log())
	}
	for _, f := range []string{"desktop.endpoint", "node.endpoint"} {
		if _, err := os.Stat(filepath.Join(cfgDir, f)); !os.IsNotExist(err) {
			t.Errorf("%s is left after Quit: %v", f, err)
		}
	}
	// The lock went with it: the next launch is the instance.
	next := launch("wine-after-quit")
	waitLog(t, next, "palyra-desktop running")
}

// waitLog waits until p's log has line, failing t if p exits first.
func waitLog(t *testing.T, p *appProcess, line string) {
	t.Helper()
	waitFor(t, startDeadline, strconv.Quote(line)+" in palyra-desktop's log", func() bool {
		select {
		case <-p.done:
			t.Fatalf("palyra-desktop exited (%v):\n%s", p.err, p.log())
		default:
		}
		return strings.Contains(p.log(), line)
	})
}

// waitExit waits until p has exited, and exited 0.
func waitExit(t *testing.T, p *appProcess) {
	t.Helper()
	waitFor(t, stepDeadline, "palyra-desktop to quit", func() bool {
		select {
		case <-p.done:
			return true
		default:
			return false
		}
	})
	if p.err != nil {
		t.Fatalf("palyra-desktop exited with %v:\n%s", p.err, p.log())
	}
}

// geometry is window win's place on the screen.
func (d *desktopEnv) geometry(win string) image.Rectangle {
	d.t.Helper()
	cmd := exec.Command("xdotool", "getwindowgeometry", "--shell", win)
	cmd.Env = d.env
	out, err := cmd.Output()
	if err != nil {
		d.t.Fatalf("xdotool getwindowgeometry %s: %v", win, err)
	}
	v := map[string]int{}
	for _, line := range strings.Fields(string(out)) {
		if k, val, ok := strings.Cut(line, "="); ok {
			v[k], _ = strconv.Atoi(val)
		}
	}
	if v["WIDTH"] == 0 || v["HEIGHT"] == 0 {
		d.t.Fatalf("xdotool getwindowgeometry %s: %s", win, out)
	}
	return image.Rect(v["X"], v["Y"], v["X"]+v["WIDTH"], v["Y"]+v["HEIGHT"])
}

// checkDrawn fails t unless the window at r in the screenshot img was
// drawn: it is on the screen, next to none of it is the screen's own
// background (an undrawn window shows that, or black), and it has more
// than a few colours, none of which covers nearly all of it (a window
// cleared to one colour has one). what names it in the failure.
func checkDrawn(t *testing.T, img image.Image, r image.Rectangle, what string) {
	t.Helper()
	b := img.Bounds()
	if !r.In(b) {
		t.Errorf("%s at %v is not within the screen %v", what, r, b)
		return
	}
	// Below and right of every window: the root window's colour.
	root := img.At(b.Max.X-1, b.Max.Y-1)
	colours := map[[3]uint32]int{}
	rootPixels := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			c := img.At(x, y)
			cr, cg, cb, _ := c.RGBA()
			colours[[3]uint32{cr, cg, cb}]++
			if rr, rg, rb, _ := root.RGBA(); cr == rr && cg == rg && cb == rb {
				rootPixels++
			}
		}
	}
	total := r.Dx() * r.Dy()
	most := 0
	for _, n := range colours {
		most = max(most, n)
	}
	stats := fmt.Sprintf("%s at %v: %d colours, the commonest on %.1f%%, the screen's background on %.1f%%",
		what, r, len(colours), 100*float64(most)/float64(total), 100*float64(rootPixels)/float64(total))
	t.Log(stats)
	if len(colours) < 16 || most > total*97/100 || rootPixels > total/100 {
		t.Errorf("%s does not look drawn: %s", what, stats)
	}
}
