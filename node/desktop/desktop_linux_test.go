package desktop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/godbus/dbus/v5"
)

// These tests go through the real things: a private X server (Xvfb) per
// test with the real xclip, xsel, xwd and xsetroot, and a private D-Bus
// daemon per test on which the test itself plays the notification daemon,
// the one seam: a real D-Bus service that records what reaches it.
//
// Each test describes its desktop session as an environment (DISPLAY,
// DBUS_SESSION_BUS_ADDRESS, PATH...) and calls the session's methods, so the
// tests run in parallel without touching this process's environment. The
// Public tests check that the package's functions read that environment.

// testPackages names the Debian packages the tests need, for the message
// when a tool is missing; the Makefile's TEST_PACKAGES installs them.
const testPackages = "xvfb xclip xsel x11-apps x11-xserver-utils dbus"

const (
	startDeadline = 30 * time.Second // for Xvfb or dbus-daemon to be ready
	callDeadline  = 60 * time.Second // for one call under test, on a loaded machine
	stopDelay     = 10 * time.Second // after SIGTERM, before SIGKILL
)

// requireTools fails the test when a tool it needs is not installed.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("%s not found: install the Debian packages %s (make test does that)", strings.Join(missing, ", "), testPackages)
	}
}

// testSession returns a session with this process's environment less
// anything that could reach a real desktop, with a throwaway HOME and
// XDG_RUNTIME_DIR, and set on top.
func testSession(t *testing.T, set ...string) session {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR", "HOME":
		default:
			env = append(env, kv)
		}
	}
	dir := t.TempDir()
	for _, sub := range []string{"home", "run"} {
		if err := os.Mkdir(filepath.Join(dir, sub), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	env = append(env, "HOME="+filepath.Join(dir, "home"), "XDG_RUNTIME_DIR="+filepath.Join(dir, "run"))
	return session{env: append(env, set...)}
}

// pathWith returns a PATH entry naming a directory that holds only the given
// tools, to make the session see just those.
func pathWith(t *testing.T, tools ...string) string {
	t.Helper()
	dir := t.TempDir()
	for _, tool := range tools {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Fatalf("%s not found: install the Debian packages %s", tool, testPackages)
		}
		if err := os.Symlink(p, filepath.Join(dir, tool)); err != nil {
			t.Fatal(err)
		}
	}
	return "PATH=" + dir
}

// startDaemon starts a server that reports it is ready by writing a line to
// file descriptor 3 (Xvfb -displayfd, dbus-daemon --print-address), and
// returns that line. The server is stopped with SIGTERM when the test ends.
func startDaemon(t *testing.T, name string, args ...string) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	logPath := filepath.Join(t.TempDir(), name+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()

	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.ExtraFiles = []*os.File{w}
	// A file, not a pipe: nothing waits on the output.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopDelay
	err = cmd.Start()
	w.Close() // the child's copy is the one that matters now
	if err != nil {
		cancel()
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})

	// The read ends with the line, with EOF if the server exits first, or
	// at the deadline.
	if err := r.SetReadDeadline(time.Now().Add(startDeadline)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil {
		log, _ := os.ReadFile(logPath)
		t.Fatalf("%s did not report that it is ready: %v\n%s", name, err, log)
	}
	return strings.TrimSpace(line)
}

// startXvfb starts a private X server with one screen, e.g. "1024x768x24",
// and returns its DISPLAY. -displayfd has it pick a free display number
// itself, so parallel tests and test processes do not race for one.
// -noreset keeps the root window as a test set it when the test's last
// client disconnects.
func startXvfb(t *testing.T, screen string) string {
	t.Helper()
	requireTools(t, "Xvfb")
	n := startDaemon(t, "Xvfb", "-displayfd", "3", "-screen", "0", screen, "-nolisten", "tcp", "-noreset")
	if _, err := strconv.Atoi(n); err != nil {
		t.Fatalf("Xvfb reported display %q", n)
	}
	return ":" + n
}

// startBus starts a private D-Bus daemon listening on listen (a D-Bus
// address) and returns its address. The configuration allows everything but
// activates only the services in serviceDir (none if ""), so a notification
// daemon installed on this machine cannot be started on it.
func startBus(t *testing.T, listen, serviceDir string) string {
	t.Helper()
	requireTools(t, "dbus-daemon")
	var services string
	if serviceDir != "" {
		services = "<servicedir>" + serviceDir + "</servicedir>"
	}
	config := `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>` + listen + `</listen>
  <auth>EXTERNAL</auth>
  ` + services + `
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`
	configPath := filepath.Join(t.TempDir(), "bus.conf")
	if err := os.WriteFile(configPath, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	return startDaemon(t, "dbus-daemon", "--nofork", "--nosyslog", "--print-address=3", "--config-file="+configPath)
}

// shortDir returns a new directory with a short path: a unix socket's path
// must fit in 108 bytes, which t.TempDir's, named after the test, may not.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "pd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func callContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), callDeadline)
	t.Cleanup(cancel)
	return ctx
}

// wantUnsupported fails unless err wraps ErrUnsupported and its message
// says each of says.
func wantUnsupported(t *testing.T, err error, says ...string) {
	t.Helper()
	if !errors.Is(err, ErrUnsupported) {
		t.Errorf("error = %v, want one wrapping ErrUnsupported", err)
		return
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
}

// --- Clipboard ---

// clipboardTexts are written and read back: non-ASCII, multi-line, a
// trailing newline (no tool may add or drop one), the most xsel holds, and
// 512 KiB, more than an X server takes in one request, so the transfer goes
// in INCR chunks.
var clipboardTexts = []struct{ name, text string }{
	{"ascii", "hello from palyra"},
	{"unicode", "ünïcødé ✓ 🎉 日本語"},
	{"multi-line", "first line\nsecond line\r\n\tindented\n\nlast"},
	{"trailing newline", "ends with a newline\n"},
	{"4000 bytes", strings.Repeat("ü", xselMaxWrite/2)},
	{"large", strings.Repeat("0123456789abcdef ünïcødé 🎉\n", 1<<19/32)},
	{"empty", ""},
}

func TestClipboardX11(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"xclip", "xsel"} {
		t.Run(tool, func(t *testing.T) {
			t.Parallel()
			display := startXvfb(t, "320x240x24")
			// Only this tool on PATH: the other one checks below
			// that the text really is on the X clipboard.
			s := testSession(t, "DISPLAY="+display, pathWith(t, tool))
			if ct, err := s.clipboardTool(); err != nil || ct.name != tool {
				t.Fatalf("clipboard tool = %q, %v; want %s", ct.name, err, tool)
			}
			other := map[string][]string{
				"xclip": {"xsel", "--clipboard", "--output"},
				"xsel":  {"xclip", "-selection", "clipboard", "-o"},
			}[tool]
			ctx := callContext(t)

			// Nothing owns the clipboard of a new server.
			if got, err := s.readClipboard(ctx); err != nil || got != "" {
				t.Fatalf("reading an empty clipboard = %q, %v; want \"\", nil", got, err)
			}
			for _, tc := range clipboardTexts {
				if tool == "xsel" && len(tc.text) > xselMaxWrite {
					// Refused, before anything reaches the clipboard
					// (see xselMaxWrite).
					before, err := s.readClipboard(ctx)
					if err != nil {
						t.Fatal(err)
					}
					wantUnsupported(t, s.writeClipboard(ctx, tc.text), "clipboard: xsel cannot hold more than 4000 bytes", "install xclip")
					if after, err := s.readClipboard(ctx); err != nil || after != before {
						t.Errorf("a refused write changed the clipboard from %.40q to %.40q (%v)", before, after, err)
					}
					continue
				}
				if err := s.writeClipboard(ctx, tc.text); err != nil {
					t.Fatalf("writing %s: %v", tc.name, err)
				}
				// No waiting: writeClipboard returns once the
				// text can be pasted.
				got, err := s.readClipboard(ctx)
				if err != nil || got != tc.text {
					t.Errorf("reading back %s = %d bytes %.40q, %v; want %d bytes %.40q", tc.name, len(got), got, err, len(tc.text), tc.text)
				}
				cmd := exec.CommandContext(ctx, other[0], other[1:]...)
				cmd.Env = s.env
				out, err := cmd.Output()
				if err != nil && !(tc.text == "" && other[0] == "xclip") { // xclip fails on an empty clipboard
					t.Errorf("reading %s with %s: %v", tc.name, other[0], err)
				}
				if string(out) != tc.text {
					t.Errorf("%s reads %s as %d bytes %.40q, want %d bytes", other[0], tc.name, len(out), out, len(tc.text))
				}
			}
		})
	}
}

// TestClipboardLatin1 reads a clipboard whose owner offers only the X11
// STRING target, in ISO 8859-1, as a program that predates UTF-8 does.
func TestClipboardLatin1(t *testing.T) {
	t.Parallel()
	requireTools(t, "xclip")
	display := startXvfb(t, "320x240x24")
	s := testSession(t, "DISPLAY="+display, pathWith(t, "xclip"))
	ctx := callContext(t)

	// Through toolRun, as writeClipboard does: xclip's child would hold
	// the pipes of CombinedOutput open.
	xclip, _ := s.lookPath("xclip")
	if _, err := (toolRun{
		path:     xclip,
		args:     []string{"-selection", "clipboard", "-target", "STRING", "-i"},
		env:      s.env,
		stdin:    strings.NewReader("caf\xe9 \xfcber \xa9"), // café über ©
		detaches: true,
	}).run(ctx); err != nil {
		t.Fatalf("xclip -target STRING: %v", err)
	}
	// The reads that follow wait for xclip's child to own the clipboard:
	// a bounded number of tries, each a real round trip through X.
	want := "café über ©"
	var got string
	for range 50 {
		var err error
		if got, err = s.readClipboard(ctx); err != nil {
			t.Fatal(err)
		}
		if got == want {
			return
		}
	}
	t.Errorf("clipboard with a Latin-1 owner reads %q, want %q", got, want)
}

// TestClipboardContext: a read from a clipboard owner that never answers
// ends when the context does, with the context's error.
func TestClipboardContext(t *testing.T) {
	t.Parallel()
	requireTools(t, "xclip")
	display := startXvfb(t, "320x240x24")
	s := testSession(t, "DISPLAY="+display, pathWith(t, "xclip", "xwd"))
	ctx := callContext(t)

	// An owner in the foreground (-quiet does not fork), so the test has
	// its process to stop.
	owner := exec.CommandContext(ctx, "xclip", "-selection", "clipboard", "-quiet", "-i")
	owner.Env = s.env
	owner.Stdin = strings.NewReader("owned")
	if err := owner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = owner.Process.Signal(syscall.SIGCONT)
		_ = owner.Process.Kill()
		_ = owner.Wait()
	})
	owned := false
	for range 50 {
		if got, err := s.readClipboard(ctx); err == nil && got == "owned" {
			owned = true
			break
		}
	}
	if !owned {
		t.Fatal("the foreground xclip did not come to own the clipboard")
	}
	if err := owner.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}

	const deadline = 300 * time.Millisecond
	short, cancel := context.WithTimeout(ctx, deadline)
	defer cancel()
	start := time.Now()
	got, err := s.readClipboard(short)
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("reading from an owner that never answers = %q, %v; want context.DeadlineExceeded", got, err)
	}
	if elapsed > deadline+waitDelay+5*time.Second {
		t.Errorf("reading took %s with a %s deadline", elapsed, deadline)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.writeClipboard(cancelled, "x"); !errors.Is(err, context.Canceled) {
		t.Errorf("writing with a cancelled context: %v, want context.Canceled", err)
	}
	if _, err := s.captureScreen(cancelled); !errors.Is(err, context.Canceled) {
		t.Errorf("capturing with a cancelled context: %v, want context.Canceled", err)
	}
}

// --- Screen ---

// A 13x7 tile, asymmetric and of odd sizes, so that a wrong stride, a row
// order upside down or a mirror image cannot match.
var tile = []string{
	"#############",
	"#...........#",
	"#.##.....#..#",
	"#.#.#...###.#",
	"#.##.....#..#",
	"#...........#",
	"##.##.##.####",
}

var (
	tileFG = color.RGBA{R: 0xff, G: 0xff, B: 0x00, A: 0xff} // "#", every channel differs from the background
	tileBG = color.RGBA{R: 0x00, G: 0x00, B: 0xff, A: 0xff} // "."
)

// tileXBM writes the tile as an X bitmap for xsetroot -bitmap.
func tileXBM(t *testing.T) string {
	t.Helper()
	w, h := len(tile[0]), len(tile)
	var b strings.Builder
	fmt.Fprintf(&b, "#define tile_width %d\n#define tile_height %d\nstatic unsigned char tile_bits[] = {\n", w, h)
	for _, row := range tile {
		for x0 := 0; x0 < w; x0 += 8 {
			var v byte
			for i := 0; i < 8 && x0+i < w; i++ {
				if row[x0+i] == '#' {
					v |= 1 << i // least significant bit first
				}
			}
			fmt.Fprintf(&b, "0x%02x,", v)
		}
	}
	b.WriteString("};\n")
	p := filepath.Join(t.TempDir(), "tile.xbm")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// drawTile tiles the root window with the tile.
func drawTile(t *testing.T, ctx context.Context, s session) {
	t.Helper()
	requireTools(t, "xsetroot")
	cmd := exec.CommandContext(ctx, "xsetroot", "-bitmap", tileXBM(t), "-fg", "#ffff00", "-bg", "#0000ff")
	cmd.Env = s.env
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xsetroot: %v: %s", err, out)
	}
}

// checkTiled compares every pixel of img with the tiled root window.
func checkTiled(t *testing.T, img image.Image, w, h int) {
	t.Helper()
	if got := img.Bounds(); got != image.Rect(0, 0, w, h) {
		t.Fatalf("captured %v, want %dx%d", got, w, h)
	}
	bad := 0
	for y := range h {
		for x := range w {
			want := tileBG
			if tile[y%len(tile)][x%len(tile[0])] == '#' {
				want = tileFG
			}
			if got := color.RGBAModel.Convert(img.At(x, y)).(color.RGBA); got != want {
				if bad++; bad <= 5 {
					t.Errorf("pixel (%d,%d) = %v, want %v", x, y, got, want)
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d pixels differ", bad, w*h)
	}
}

// saveArtifact saves a capture under the repository's artifacts/ for a
// person to look at.
func saveArtifact(t *testing.T, name string, img image.Image) {
	t.Helper()
	dir := filepath.Join("..", "..", "artifacts", "desktop")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

// TestCaptureScreenX11 captures X servers of each depth Xvfb offers, so xwd
// writes each of its pixel layouts: 8 bits through a PseudoColor colormap,
// 16 bits of 5-6-5 TrueColor, and 24-bit TrueColor in 32-bit pixels.
func TestCaptureScreenX11(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		depth, w, h int
	}{
		{24, 1024, 768},
		{16, 640, 480},
		{8, 320, 240},
	} {
		t.Run(fmt.Sprintf("depth%d", tc.depth), func(t *testing.T) {
			t.Parallel()
			display := startXvfb(t, fmt.Sprintf("%dx%dx%d", tc.w, tc.h, tc.depth))
			s := testSession(t, "DISPLAY="+display, pathWith(t, "xwd"))
			ctx := callContext(t)
			drawTile(t, ctx, s)
			img, err := s.captureScreen(ctx)
			if err != nil {
				t.Fatal(err)
			}
			saveArtifact(t, fmt.Sprintf("capture-x11-depth%d.png", tc.depth), img)
			checkTiled(t, img, tc.w, tc.h)
		})
	}
}

// --- Without a display or tools ---

func TestNoDisplay(t *testing.T) {
	t.Parallel()
	s := testSession(t) // neither DISPLAY nor WAYLAND_DISPLAY
	ctx := callContext(t)
	_, err := s.readClipboard(ctx)
	wantUnsupported(t, err, "clipboard: no display (DISPLAY and WAYLAND_DISPLAY are unset)")
	wantUnsupported(t, s.writeClipboard(ctx, "x"), "clipboard: no display (DISPLAY and WAYLAND_DISPLAY are unset)")
	_, err = s.captureScreen(ctx)
	wantUnsupported(t, err, "screen capture: no display (DISPLAY and WAYLAND_DISPLAY are unset)")
}

func TestMissingTools(t *testing.T) {
	t.Parallel()
	ctx := callContext(t)
	empty := pathWith(t) // a PATH with no tools at all
	for _, tc := range []struct {
		name              string
		env               []string
		clipboard, screen string
	}{
		{"x11", []string{"DISPLAY=:0"}, "clipboard: install xclip or xsel (X11)", "screen capture: install x11-apps, for xwd (X11)"},
		{"wayland", []string{"WAYLAND_DISPLAY=wayland-0"}, "clipboard: install wl-clipboard (Wayland)", "screen capture: install grim"},
		{"xwayland", []string{"DISPLAY=:0", "WAYLAND_DISPLAY=wayland-0"}, "clipboard: install wl-clipboard (Wayland) or xclip or xsel (X11)", "screen capture: install grim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSession(t, append(tc.env, empty)...)
			_, err := s.readClipboard(ctx)
			wantUnsupported(t, err, tc.clipboard)
			wantUnsupported(t, s.writeClipboard(ctx, "x"), tc.clipboard)
			_, err = s.captureScreen(ctx)
			wantUnsupported(t, err, tc.screen)
		})
	}
}

// TestDisplayGone: DISPLAY names a server that is not there.
func TestDisplayGone(t *testing.T) {
	t.Parallel()
	const display = ":59999"
	if _, err := os.Stat("/tmp/.X11-unix/X59999"); err == nil {
		t.Fatalf("an X server is running on %s; the test needs a display number nobody uses", display)
	}
	s := testSession(t, "DISPLAY="+display, pathWith(t, "xclip", "xwd"))
	ctx := callContext(t)
	_, err := s.readClipboard(ctx)
	wantUnsupported(t, err, "clipboard: cannot connect to the display", "Can't open display")
	wantUnsupported(t, s.writeClipboard(ctx, "x"), "clipboard: cannot connect to the display")
	_, err = s.captureScreen(ctx)
	wantUnsupported(t, err, "screen capture: cannot connect to the display", "unable to open display")
}

// --- Notifications ---

const notifyIfacePath = "/org/freedesktop/Notifications"

// notifyCall is one Notify call as the notification daemon received it.
type notifyCall struct {
	AppName    string
	ReplacesID uint32
	Icon       string
	Summary    string
	Body       string
	Actions    []string
	Hints      map[string]dbus.Variant
	Timeout    int32
}

// notifyServer is the test's notification daemon, exported on the private
// bus under the Desktop Notifications Specification's name.
type notifyServer struct {
	caps  []string
	calls chan notifyCall
	hang  chan struct{} // when not nil, GetCapabilities answers only once it is closed
}

func (s *notifyServer) GetCapabilities() ([]string, *dbus.Error) {
	if s.hang != nil {
		<-s.hang
	}
	return s.caps, nil
}

func (s *notifyServer) Notify(app string, replaces uint32, icon, summary, body string, actions []string, hints map[string]dbus.Variant, timeout int32) (uint32, *dbus.Error) {
	s.calls <- notifyCall{app, replaces, icon, summary, body, actions, hints, timeout}
	return 1, nil
}

func (s *notifyServer) GetServerInformation() (string, string, string, string, *dbus.Error) {
	return "palyra-test", "palyra", "0", "1.2", nil
}

// serveNotifications connects to the bus at addr and serves notifications
// there until the test ends.
func serveNotifications(t *testing.T, addr string, srv *notifyServer) {
	t.Helper()
	conn, err := dbus.Connect(addr)
	if err != nil {
		t.Fatalf("connecting to the private bus: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if srv.hang != nil {
		t.Cleanup(func() { close(srv.hang) }) // runs before the connection closes
	}
	if err := conn.Export(srv, notifyIfacePath, notifyIface); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(notifyService, dbus.NameFlagDoNotQueue)
	if err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("claiming %s: reply %v, %v", notifyService, reply, err)
	}
}

func TestNotify(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		caps        []string
		title, body string
		// what the daemon receives
		wantSummary, wantBody string
	}{
		{
			name: "plain", caps: []string{"body"},
			title: "Tïtle ✓", body: "first <b>line</b> & more\nsecond line",
			wantSummary: "Tïtle ✓", wantBody: "first <b>line</b> & more\nsecond line",
		},
		{
			// A daemon that reads the body as markup gets it
			// escaped, so it shows the text as typed.
			name: "markup", caps: []string{"body", "body-markup", "body-hyperlinks"},
			title: "<i>not italic</i>", body: `<a href="https://example.com">a link</a> & <img src="x"/>`,
			wantSummary: "<i>not italic</i>", wantBody: `&lt;a href="https://example.com"&gt;a link&lt;/a&gt; &amp; &lt;img src="x"/&gt;`,
		},
		{
			// Not valid D-Bus strings: sent cleaned up rather than
			// getting the connection dropped by the bus.
			name: "invalid strings", caps: []string{"body"},
			title: "nul\x00byte", body: "bad \xff utf-8",
			wantSummary: "nulbyte", wantBody: "bad \uFFFD utf-8",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			addr := startBus(t, "unix:dir="+shortDir(t), "")
			srv := &notifyServer{caps: tc.caps, calls: make(chan notifyCall, 1)}
			serveNotifications(t, addr, srv)
			s := testSession(t, "DBUS_SESSION_BUS_ADDRESS="+addr)

			if err := s.notify(callContext(t), tc.title, tc.body); err != nil {
				t.Fatalf("notify: %v", err)
			}
			// The daemon answered Notify, so it has recorded the call.
			var got notifyCall
			select {
			case got = <-srv.calls:
			default:
				t.Fatal("the notification daemon received no Notify call")
			}
			if got.AppName != "Palyra" || got.Summary != tc.wantSummary || got.Body != tc.wantBody ||
				got.ReplacesID != 0 || got.Timeout != -1 || len(got.Actions) != 0 {
				t.Errorf("daemon received %+v\nwant app Palyra, summary %q, body %q, replaces 0, timeout -1, no actions", got, tc.wantSummary, tc.wantBody)
			}
		})
	}
}

// TestNotifyRuntimeDirBus: with DBUS_SESSION_BUS_ADDRESS unset the bus is
// found as $XDG_RUNTIME_DIR/bus, where systemd's user session puts it.
func TestNotifyRuntimeDirBus(t *testing.T) {
	t.Parallel()
	runtimeDir := shortDir(t)
	addr := startBus(t, "unix:path="+filepath.Join(runtimeDir, "bus"), "")
	srv := &notifyServer{caps: []string{"body"}, calls: make(chan notifyCall, 1)}
	serveNotifications(t, addr, srv)
	s := testSession(t, "XDG_RUNTIME_DIR="+runtimeDir)
	if err := s.notify(callContext(t), "t", "b"); err != nil {
		t.Fatalf("notify: %v", err)
	}
	if len(srv.calls) != 1 {
		t.Error("the notification daemon received no Notify call")
	}
}

func TestNotifyUnsupported(t *testing.T) {
	t.Parallel()

	t.Run("no service", func(t *testing.T) {
		t.Parallel()
		addr := startBus(t, "unix:dir="+shortDir(t), "")
		s := testSession(t, "DBUS_SESSION_BUS_ADDRESS="+addr)
		wantUnsupported(t, s.notify(callContext(t), "t", "b"),
			"desktop notifications: no notification service on the session bus (org.freedesktop.Notifications)")
	})

	t.Run("service fails to start", func(t *testing.T) {
		t.Parallel()
		// Installed for activation, but its program exits at once:
		// the bus answers with a Spawn error.
		services := t.TempDir()
		file := "[D-BUS Service]\nName=" + notifyService + "\nExec=/bin/false\n"
		if err := os.WriteFile(filepath.Join(services, notifyService+".service"), []byte(file), 0o600); err != nil {
			t.Fatal(err)
		}
		addr := startBus(t, "unix:dir="+shortDir(t), services)
		s := testSession(t, "DBUS_SESSION_BUS_ADDRESS="+addr)
		wantUnsupported(t, s.notify(callContext(t), "t", "b"),
			"desktop notifications: the notification service (org.freedesktop.Notifications) could not be started")
	})

	t.Run("bus gone", func(t *testing.T) {
		t.Parallel()
		addr := "unix:path=" + filepath.Join(t.TempDir(), "no-such-bus")
		s := testSession(t, "DBUS_SESSION_BUS_ADDRESS="+addr)
		wantUnsupported(t, s.notify(callContext(t), "t", "b"),
			"desktop notifications: cannot reach the session bus at "+addr)
	})

	t.Run("no bus", func(t *testing.T) {
		t.Parallel()
		s := testSession(t) // no address, and an empty XDG_RUNTIME_DIR
		wantUnsupported(t, s.notify(callContext(t), "t", "b"),
			"desktop notifications: no session bus (DBUS_SESSION_BUS_ADDRESS is unset and there is no "+s.getenv("XDG_RUNTIME_DIR")+"/bus)")
	})
}

// TestNotifyContext: a daemon that never answers holds the call only until
// the context ends.
func TestNotifyContext(t *testing.T) {
	t.Parallel()
	addr := startBus(t, "unix:dir="+shortDir(t), "")
	serveNotifications(t, addr, &notifyServer{hang: make(chan struct{}), calls: make(chan notifyCall, 1)})
	s := testSession(t, "DBUS_SESSION_BUS_ADDRESS="+addr)

	const deadline = 300 * time.Millisecond
	ctx, cancel := context.WithTimeout(t.Context(), deadline)
	defer cancel()
	start := time.Now()
	err := s.notify(ctx, "t", "b")
	elapsed := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || errors.Is(err, ErrUnsupported) {
		t.Errorf("notify with a daemon that never answers: %v, want context.DeadlineExceeded", err)
	}
	if elapsed > deadline+5*time.Second {
		t.Errorf("notify took %s with a %s deadline", elapsed, deadline)
	}
}

// --- The package's functions, on this process's environment ---

// TestPublic runs the package's functions with this process's environment
// pointed at a private X server and bus: they must read it. Not parallel: it
// sets the environment.
func TestPublic(t *testing.T) {
	display := startXvfb(t, "1024x768x24")
	addr := startBus(t, "unix:dir="+shortDir(t), "")
	srv := &notifyServer{caps: []string{"body"}, calls: make(chan notifyCall, 1)}
	serveNotifications(t, addr, srv)
	tmp := t.TempDir()
	ctx := callContext(t)

	t.Setenv("DISPLAY", display)
	t.Setenv("WAYLAND_DISPLAY", "")
	t.Setenv("XAUTHORITY", "")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", addr)
	t.Setenv("HOME", tmp)
	requireTools(t, "xclip", "xwd")

	if err := Notify(ctx, "Palyra test", "from TestPublic"); err != nil {
		t.Errorf("Notify: %v", err)
	} else if got := <-srv.calls; got.Summary != "Palyra test" || got.Body != "from TestPublic" {
		t.Errorf("daemon received %+v", got)
	}

	const text = "ünïcødé 🎉\nsecond line"
	if err := WriteClipboard(ctx, text); err != nil {
		t.Fatalf("WriteClipboard: %v", err)
	}
	if got, err := ReadClipboard(ctx); err != nil || got != text {
		t.Errorf("ReadClipboard = %q, %v; want %q", got, err, text)
	}

	drawTile(t, ctx, session{env: os.Environ()})
	img, err := CaptureScreen(ctx)
	if err != nil {
		t.Fatalf("CaptureScreen: %v", err)
	}
	checkTiled(t, img, 1024, 768)

	// No display, no bus.
	t.Setenv("DISPLAY", "")
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(tmp, "no-such-bus"))
	_, err = ReadClipboard(ctx)
	wantUnsupported(t, err, "clipboard: no display")
	wantUnsupported(t, WriteClipboard(ctx, "x"), "clipboard: no display")
	_, err = CaptureScreen(ctx)
	wantUnsupported(t, err, "screen capture: no display")
	wantUnsupported(t, Notify(ctx, "t", "b"), "cannot reach the session bus")
}
