//go:build linux || freebsd || netbsd || openbsd

package desktop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/godbus/dbus/v5"
)

// On the freedesktop unixes notifications go over the session D-Bus to
// whatever notification daemon the desktop runs; the clipboard and the
// screen go through the tools of the display server in use: wl-clipboard and
// grim on Wayland, xclip (or xsel) and xwd on X11.

// session is the desktop session a call reaches, as its environment names
// it: DISPLAY, WAYLAND_DISPLAY, DBUS_SESSION_BUS_ADDRESS, XDG_RUNTIME_DIR,
// and PATH for finding tools. The tools run with this environment. The
// package's functions use this process's environment; tests pass their own,
// so they run in parallel against private X servers and buses without
// touching the process's.
type session struct {
	env []string
}

func currentSession() session { return session{env: os.Environ()} }

func notify(ctx context.Context, title, body string) error {
	return currentSession().notify(ctx, title, body)
}

func readClipboard(ctx context.Context) (string, error) {
	return currentSession().readClipboard(ctx)
}

func writeClipboard(ctx context.Context, text string) error {
	return currentSession().writeClipboard(ctx, text)
}

func captureScreen(ctx context.Context) (image.Image, error) {
	return currentSession().captureScreen(ctx)
}

// getenv returns the value of key in the session's environment; the last
// one wins, as in os/exec.
func (s session) getenv(key string) string {
	for i := len(s.env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(s.env[i], "="); ok && k == key {
			return v
		}
	}
	return ""
}

// lookPath finds an executable named name in the session's PATH. Relative
// PATH entries are skipped, as exec.LookPath refuses them too: a tool must
// not be picked up from whatever the current directory is.
func (s session) lookPath(name string) (string, bool) {
	for _, dir := range filepath.SplitList(s.getenv("PATH")) {
		if !filepath.IsAbs(dir) {
			continue
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return p, true
		}
	}
	return "", false
}

// displays reports which display servers the session names.
func (s session) displays() (wayland, x11 bool) {
	return s.getenv("WAYLAND_DISPLAY") != "", s.getenv("DISPLAY") != ""
}

// --- Notifications ---

const (
	notifyService = "org.freedesktop.Notifications"
	notifyPath    = dbus.ObjectPath("/org/freedesktop/Notifications")
	notifyIface   = "org.freedesktop.Notifications"
	notifyApp     = "Palyra"
)

// notify calls Notify of the Desktop Notifications Specification.
//
// It connects for each notification rather than keeping a connection:
// notifications are rare, and a fresh connection follows the session (a bus
// restarted since, a test's private bus).
func (s session) notify(ctx context.Context, title, body string) error {
	addr, err := s.sessionBusAddress()
	if err != nil {
		return err
	}
	// WithContext closes the connection when ctx ends, which also ends
	// an authentication handshake that hangs.
	conn, err := dbus.Connect(addr, dbus.WithContext(ctx))
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("desktop notifications: connecting to the session bus: %w", ctxErr)
		}
		return fmt.Errorf("desktop notifications: cannot reach the session bus at %s: %w: %w", addr, err, ErrUnsupported)
	}
	defer conn.Close()
	obj := conn.Object(notifyService, notifyPath)

	// A server that advertises body-markup reads the body as markup:
	// links, images, formatting. The body comes from elsewhere (a peer),
	// so for such a server it is escaped, to be shown as typed. A server
	// without markup shows the body as it is, and would show escapes
	// too.
	var caps []string
	if err := obj.CallWithContext(ctx, notifyIface+".GetCapabilities", 0).Store(&caps); err != nil {
		return notifyFailure(ctx, "asking the notification service what it can show", err)
	}
	body = dbusString(body)
	if slices.Contains(caps, "body-markup") {
		body = markupEscaper.Replace(body)
	}
	var id uint32
	err = obj.CallWithContext(ctx, notifyIface+".Notify", 0,
		notifyApp,                 // app_name
		uint32(0),                 // replaces_id: a new notification
		"",                        // app_icon
		dbusString(title),         // summary, never markup
		body,                      // body
		[]string{},                // actions
		map[string]dbus.Variant{}, // hints
		int32(-1),                 // expire_timeout: the server's default
	).Store(&id)
	if err != nil {
		return notifyFailure(ctx, "showing the notification", err)
	}
	return nil
}

// sessionBusAddress finds the session bus the way libdbus does, without
// autolaunch. dbus.ConnectSessionBus would instead start a new bus through
// dbus-launch when none is found (one with no notification daemon on it,
// left running), and set DBUS_SESSION_BUS_ADDRESS in this process's
// environment as it goes.
func (s session) sessionBusAddress() (string, error) {
	if addr := s.getenv("DBUS_SESSION_BUS_ADDRESS"); addr != "" && addr != "autolaunch:" {
		return addr, nil
	}
	dir := s.getenv("XDG_RUNTIME_DIR")
	if dir == "" {
		dir = fmt.Sprintf("/run/user/%d", os.Getuid())
	}
	p := filepath.Join(dir, "bus")
	if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == fs.ModeSocket {
		return "unix:path=" + dbus.EscapeBusAddressValue(p), nil
	}
	return "", fmt.Errorf("desktop notifications: no session bus (DBUS_SESSION_BUS_ADDRESS is unset and there is no %s): %w", p, ErrUnsupported)
}

// notifyFailure says why a call to the notification service failed: a
// service that is not there is ErrUnsupported.
func notifyFailure(ctx context.Context, doing string, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("desktop notifications: %s: %w", doing, ctxErr)
	}
	var name string
	var dbusErr dbus.Error
	var dbusErrPtr *dbus.Error
	switch {
	case errors.As(err, &dbusErr):
		name = dbusErr.Name
	case errors.As(err, &dbusErrPtr):
		name = dbusErrPtr.Name
	}
	switch {
	case name == "org.freedesktop.DBus.Error.ServiceUnknown", name == "org.freedesktop.DBus.Error.NameHasNoOwner":
		return fmt.Errorf("desktop notifications: no notification service on the session bus (%s): %w", notifyService, ErrUnsupported)
	case strings.HasPrefix(name, "org.freedesktop.DBus.Error.Spawn."):
		// Installed for activation, but it would not start (often: no
		// display for it to show on).
		return fmt.Errorf("desktop notifications: the notification service (%s) could not be started: %v: %w", notifyService, err, ErrUnsupported)
	}
	return fmt.Errorf("desktop notifications: %s: %w", doing, err)
}

// markupEscaper escapes the characters the notification markup gives a
// meaning to.
var markupEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// dbusString makes s a valid D-Bus string (UTF-8 without NUL); the bus drops
// a connection that sends anything else.
func dbusString(s string) string {
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "")
}

// --- Clipboard ---

// clipboardTool is the program that reads and writes the clipboard.
type clipboardTool struct {
	name      string   // for messages
	readPath  string   // the program that reads
	read      []string // its arguments
	writePath string   // the program that writes, from stdin
	write     []string // its arguments
	clear     []string // the writer's arguments to empty the clipboard; nil: write nothing instead
	// confirm: the writer returns before the selection is owned, so a
	// write is read back until it shows (see confirmClipboard).
	confirm bool
	// maxWrite, when not 0, is the most bytes the writer can hold.
	maxWrite int
}

// clipboardTool picks the clipboard tool for the session: wl-clipboard on
// Wayland, else xclip or xsel on X11. On XWayland sessions, which name both,
// the compositor keeps the two clipboards in step; the Wayland tools come
// first.
func (s session) clipboardTool() (clipboardTool, error) {
	wayland, x11 := s.displays()
	if !wayland && !x11 {
		return clipboardTool{}, fmt.Errorf("clipboard: no display (DISPLAY and WAYLAND_DISPLAY are unset): %w", ErrUnsupported)
	}
	if wayland {
		paste, okPaste := s.lookPath("wl-paste")
		cp, okCopy := s.lookPath("wl-copy")
		if okPaste && okCopy {
			// wl-copy 2.x forks only once the compositor has
			// set the selection, so a write needs no reading back.
			return clipboardTool{
				name:     "wl-clipboard",
				readPath: paste, read: []string{"--no-newline", "--type", "text"},
				writePath: cp, write: []string{"--type", "text/plain;charset=utf-8"},
				clear: []string{"--clear"},
			}, nil
		}
	}
	if x11 {
		// Both tools fork a child that owns the selection and serves
		// it until another program takes the clipboard; the parent
		// returns first, before (xsel) or just as (xclip 0.13) the
		// child takes ownership.
		if p, ok := s.lookPath("xclip"); ok {
			return clipboardTool{
				name:     "xclip",
				readPath: p, read: []string{"-selection", "clipboard", "-o"},
				writePath: p, write: []string{"-selection", "clipboard", "-i"},
				confirm: true,
			}, nil
		}
		if p, ok := s.lookPath("xsel"); ok {
			// Its log would otherwise go to the user's home.
			return clipboardTool{
				name:     "xsel",
				readPath: p, read: []string{"--clipboard", "--output"},
				writePath: p, write: []string{"--clipboard", "--input", "--logfile", os.DevNull},
				confirm:  true,
				maxWrite: xselMaxWrite,
			}, nil
		}
	}
	var install string
	switch {
	case wayland && x11:
		install = "install wl-clipboard (Wayland) or xclip or xsel (X11)"
	case wayland:
		install = "install wl-clipboard (Wayland)"
	default:
		install = "install xclip or xsel (X11)"
	}
	return clipboardTool{}, fmt.Errorf("clipboard: %s: %w", install, ErrUnsupported)
}

func (s session) readClipboard(ctx context.Context) (string, error) {
	t, err := s.clipboardTool()
	if err != nil {
		return "", err
	}
	b, err := s.readClipboardWith(ctx, t)
	if err != nil {
		return "", err
	}
	return latin1OrUTF8(b), nil
}

// readClipboardWith returns the clipboard's bytes as the tool prints them.
func (s session) readClipboardWith(ctx context.Context, t clipboardTool) ([]byte, error) {
	out, err := toolRun{path: t.readPath, args: t.read, env: s.env}.run(ctx)
	if err != nil {
		if noClipboardText(stderrOf(err)) {
			return nil, nil
		}
		return nil, displayFailure("clipboard", "reading the clipboard", err)
	}
	return out, nil
}

// noClipboardText reports whether a reading tool failed only because the
// clipboard holds no text: it is empty (no program owns it) or holds
// something else. xsel prints nothing then, and succeeds.
func noClipboardText(stderr string) bool {
	for _, msg := range []string{
		"not available",                      // xclip: "Error: target STRING not available"
		"Nothing is copied",                  // wl-paste 2.x
		"No selection",                       // wl-paste 1.x
		"No suitable type of content copied", // wl-paste: not text
	} {
		if strings.Contains(stderr, msg) {
			return true
		}
	}
	return false
}

// xselMaxWrite is the most xsel (1.2.0, Debian 12's) holds reliably. It
// sends anything longer in INCR chunks of 4000 bytes, then tells the reader
// it is done; a reader that has already exited, as xsel -o or xclip -o have
// by then, no longer has the window that message goes to, and the copy of
// xsel holding the clipboard dies of the BadWindow error, taking the text
// with it. So a longer text is refused rather than lost after one paste.
const xselMaxWrite = 4000

func (s session) writeClipboard(ctx context.Context, text string) error {
	t, err := s.clipboardTool()
	if err != nil {
		return err
	}
	if t.maxWrite > 0 && len(text) > t.maxWrite {
		return fmt.Errorf("clipboard: %s cannot hold more than %d bytes (it loses longer text after one paste), this is %d; install xclip (X11): %w",
			t.name, t.maxWrite, len(text), ErrUnsupported)
	}
	run := toolRun{
		path:     t.writePath,
		args:     t.write,
		env:      s.env,
		stdin:    strings.NewReader(text),
		detaches: true,
		// The child that owns the clipboard gets a session of its
		// own, so a Ctrl-C meant for this process (its terminal's
		// process group) does not take the clipboard with it.
		sysProcAttr: &syscall.SysProcAttr{Setsid: true},
	}
	if text == "" && t.clear != nil {
		run.args, run.stdin, run.detaches = t.clear, nil, false
	}
	if _, err := run.run(ctx); err != nil {
		return displayFailure("clipboard", "writing the clipboard", err)
	}
	if t.confirm {
		return s.confirmClipboard(ctx, t, text)
	}
	return nil
}

const (
	confirmAttempts = 10
	confirmFirstGap = 2 * time.Millisecond
	confirmMaxGap   = 100 * time.Millisecond
	// confirmReadTimeout bounds one reading back. A reader can wait for
	// ever for an answer that never comes when it asks just as the new
	// copy takes the clipboard over from the old one (measured here:
	// xsel -o, about once in 300 writes); the next try asks the new one.
	confirmReadTimeout = 3 * time.Second
)

// confirmClipboard reads the clipboard back until it holds text, so that
// WriteClipboard returns only once the text can be pasted.
//
// xsel forks first and takes the selection in the child, after the parent
// has exited; xclip 0.13 asks for the selection and forks before the request
// has left its buffer, and the child sends it. Either way the tool's exit
// says nothing about whether the clipboard holds the text yet, and a read
// straight after can still see the old contents (measured here: 4 in 100
// with xsel). Reading back costs one more run of the tool, a few
// milliseconds.
func (s session) confirmClipboard(ctx context.Context, t clipboardTool, text string) error {
	gap := confirmFirstGap
	for attempt := range confirmAttempts {
		if attempt > 0 {
			if err := waitFor(ctx, gap); err != nil {
				return fmt.Errorf("clipboard: waiting for %s to take the clipboard: %w", t.name, err)
			}
			gap = min(2*gap, confirmMaxGap)
		}
		readCtx, cancel := context.WithTimeout(ctx, confirmReadTimeout)
		got, err := s.readClipboardWith(readCtx, t)
		cancel()
		if err != nil {
			if ctx.Err() == nil && errors.Is(err, context.DeadlineExceeded) {
				continue // stuck at the handover: ask again
			}
			return fmt.Errorf("clipboard: reading back what %s wrote: %w", t.name, err)
		}
		if bytes.Equal(got, []byte(text)) {
			return nil
		}
	}
	return fmt.Errorf("clipboard: %s exited, but the clipboard did not read back the text written (did another program take the clipboard?)", t.name)
}

// waitFor waits for d, or until ctx ends.
func waitFor(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// displayFailure says why a display tool failed. A tool that cannot reach
// the display (DISPLAY names a server that is gone) or finds the compositor
// without the protocol it needs is ErrUnsupported.
func displayFailure(what, doing string, err error) error {
	stderr := stderrOf(err)
	for _, msg := range []string{
		"open display",             // xclip, xsel: "Can't open display"; xwd: "unable to open display"
		"connect to a Wayland",     // wl-clipboard: "Failed to connect to a Wayland server"
		"failed to create display", // grim
	} {
		if strings.Contains(stderr, msg) {
			return fmt.Errorf("%s: cannot connect to the display: %w: %w", what, err, ErrUnsupported)
		}
	}
	for _, msg := range []string{
		"compositor doesn't support", // grim without wlr-screencopy (GNOME, KDE) or xdg-output
		"Missing a seat",             // wl-clipboard
	} {
		if strings.Contains(stderr, msg) {
			return fmt.Errorf("%s: the Wayland compositor lacks what the tool needs: %w: %w", what, err, ErrUnsupported)
		}
	}
	return fmt.Errorf("%s: %s: %w", what, doing, err)
}

// --- Screen ---

func (s session) captureScreen(ctx context.Context) (image.Image, error) {
	wayland, x11 := s.displays()
	switch {
	case wayland:
		// On Wayland the X root window (XWayland) shows no Wayland
		// windows, so there is no falling back to xwd.
		grim, ok := s.lookPath("grim")
		if !ok {
			return nil, fmt.Errorf("screen capture: install grim (Wayland; it needs a compositor with wlr-screencopy, such as sway): %w", ErrUnsupported)
		}
		out, err := toolRun{path: grim, args: []string{"-t", "png", "-"}, env: s.env}.run(ctx)
		if err != nil {
			return nil, displayFailure("screen capture", "running grim", err)
		}
		img, err := png.Decode(bytes.NewReader(out))
		if err != nil {
			return nil, fmt.Errorf("screen capture: decoding the PNG from grim: %w", err)
		}
		return img, nil
	case x11:
		// xwd (x11-apps) is on nearly every X11 desktop, and its dump
		// format is simple enough to decode here; ImageMagick's
		// import would bring far more for the same image.
		xwd, ok := s.lookPath("xwd")
		if !ok {
			return nil, fmt.Errorf("screen capture: install x11-apps, for xwd (X11): %w", ErrUnsupported)
		}
		out, err := toolRun{path: xwd, args: []string{"-root", "-silent"}, env: s.env}.run(ctx)
		if err != nil {
			return nil, displayFailure("screen capture", "running xwd", err)
		}
		img, err := decodeXWD(out)
		if err != nil {
			return nil, fmt.Errorf("screen capture: decoding the dump from xwd: %w", err)
		}
		return img, nil
	}
	return nil, fmt.Errorf("screen capture: no display (DISPLAY and WAYLAND_DISPLAY are unset): %w", ErrUnsupported)
}
