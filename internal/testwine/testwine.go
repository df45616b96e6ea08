// Package testwine runs this module's Windows builds under Wine, for the
// Windows smoke tests (`make test-windows`, files tagged wine). Each test
// gets a private Wine prefix, cloned from a booted one kept in the user's
// cache dir, with a bcryptprimitives.dll built from shim/ that supplies the
// ProcessPrng export Go's Windows runtime needs and Wine 8 lacks.
//
// What Wine 8 cannot do, and these tests therefore cannot cover: UDP
// (WSAIoctl SIO_UDP_CONNRESET is not implemented, so every UDP socket fails
// with winapi error 10045 — no QUIC), AF_UNIX sockets (error 10047; on
// Windows the local APIs are internal/localsock's loopback ports), keeping file ACLs (it derives them from Unix mode bits),
// and removing directory entries the way Go's os.RemoveAll does (see
// TempDir, which tests that run under Wine use instead of t.TempDir).
//
// It must not be imported by anything but tests.
package testwine

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gofrs/flock"
)

//go:embed shim/processprng.c shim/processprng.def
var shim embed.FS

// CacheEnv names a directory for the booted template prefix instead of the
// user's cache dir (CI can keep it between runs).
const CacheEnv = "PALYRA_WINE_CACHE"

// The Debian packages that provide the commands (make test-windows installs
// them).
const packages = "wine wine64 gcc-mingw-w64-x86-64"

const (
	mingwCC = "x86_64-w64-mingw32-gcc"
	// bootDeadline bounds wineboot of a new template (about 20 s here).
	bootDeadline = 3 * time.Minute
	// serverDeadline bounds stopping a prefix's wineserver.
	serverDeadline = 30 * time.Second
	// buildDeadline bounds one go build of a Windows binary.
	buildDeadline = 5 * time.Minute
	// cgoBuildDeadline bounds one go build with cgo: from a cold build
	// cache the desktop app's compiles GLFW and the rest of Fyne's C with
	// mingw-w64, about ten minutes on two cores.
	cgoBuildDeadline = 20 * time.Minute
)

// Wine is a private prefix, for one test.
type Wine struct {
	// Prefix is WINEPREFIX, inside the test's temporary directory.
	Prefix string
	// display is the X display its programs draw on, or none.
	display string
	wine    string
	server  string
}

// New gives tb a private prefix, made from the cached template (booting it
// first if there is none yet), and stops its wineserver when tb ends. Its
// programs have no display.
func New(tb testing.TB) *Wine {
	tb.Helper()
	return NewOnDisplay(tb, "")
}

// NewOnDisplay is New for programs that open windows: they draw on the X
// display (an X server of the test's own, such as Xvfb), and so do Wine's
// desktop and its system tray, which the prefix's first program starts.
func NewOnDisplay(tb testing.TB, display string) *Wine {
	tb.Helper()
	wine, server := lookPath(tb, "wine"), lookPath(tb, "wineserver")
	template := ensureTemplate(tb, wine, server)
	w := &Wine{Prefix: filepath.Join(tb.TempDir(), "prefix"), display: display, wine: wine, server: server}
	if err := clonePrefix(template, w.Prefix); err != nil {
		tb.Fatalf("cloning the Wine prefix %s: %v", template, err)
	}
	tb.Cleanup(func() { w.stopServer(tb) })
	w.startServer(tb)
	return w
}

// Command runs the Windows program exe (a Linux path) under Wine in the
// prefix, with this process's environment besides.
func (w *Wine) Command(ctx context.Context, exe string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, w.wine, append([]string{exe}, args...)...)
	cmd.Env = append(os.Environ(), w.env()...)
	// Should a Wine helper process still hold the output once the
	// program ended, Wait gives up on it rather than hang.
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// RestartServer stops the prefix's wineserver, which writes the registry
// (and with it Credential Manager) to disk, and starts a new one.
func (w *Wine) RestartServer(tb testing.TB) {
	tb.Helper()
	w.stopServer(tb)
	w.startServer(tb)
}

// startServer starts the prefix's wineserver, persistent until stopped
// (-p): one that wine started itself would hold on to the first program's
// output pipes until it exits, seconds after that program did.
func (w *Wine) startServer(tb testing.TB) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), serverDeadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, w.server, "-p")
	cmd.Env = append(os.Environ(), w.env()...)
	// wineserver forks into the background and this returns; its output
	// goes to /dev/null.
	if err := cmd.Run(); err != nil {
		tb.Fatalf("starting the wineserver of %s: %v", w.Prefix, err)
	}
	// The first program in a prefix starts Wine's services (services.exe,
	// winedevice.exe...), which inherit its output and keep it open while
	// the server runs: wineboot starts them here, with no output to keep.
	if err := w.Command(ctx, "wineboot").Run(); err != nil {
		tb.Fatalf("starting Wine's services in %s: %v", w.Prefix, err)
	}
}

// UserRegistry is the prefix's HKEY_CURRENT_USER as wineserver last saved
// it (user.reg); RestartServer first for what the programs wrote.
func (w *Wine) UserRegistry(tb testing.TB) string {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join(w.Prefix, "user.reg"))
	if err != nil {
		tb.Fatalf("reading the Wine prefix's registry: %v", err)
	}
	return string(b)
}

// RunTests runs the Windows test binary exe under Wine with -test.v and the
// -test.run pattern and returns its output. It fails tb unless the binary
// passes, ran at least one test, and skipped none: nothing here is meant to
// be skipped under Wine.
func (w *Wine) RunTests(tb testing.TB, exe, pattern string, timeout time.Duration) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(tb.Context(), timeout)
	defer cancel()
	cmd := w.Command(ctx, exe, "-test.v", "-test.count=1", "-test.run", pattern, "-test.timeout", timeout.String())
	out, err := cmd.CombinedOutput()
	text := string(out)
	if err != nil {
		tb.Fatalf("%s under Wine: %v\n%s", filepath.Base(exe), err, text)
	}
	if skipped := regexp.MustCompile(`(?m)^\s*--- SKIP: .*$`).FindAllString(text, -1); len(skipped) > 0 {
		tb.Fatalf("%s skipped tests under Wine:\n%s\n%s", filepath.Base(exe), strings.Join(skipped, "\n"), text)
	}
	if !regexp.MustCompile(`(?m)^--- PASS: `).MatchString(text) {
		tb.Fatalf("%s ran no test matching %q under Wine:\n%s", filepath.Base(exe), pattern, text)
	}
	return text
}

// TestPackage builds the tests of pkg (an import path) for Windows and runs
// those matching pattern under Wine in a new prefix (see RunTests), with
// their output in tb's log; it returns the prefix, for what the caller
// checks in it afterwards.
func TestPackage(tb testing.TB, pkg, pattern string, timeout time.Duration) *Wine {
	tb.Helper()
	exe := BuildTest(tb, pkg)
	w := New(tb)
	tb.Log(w.RunTests(tb, exe, pattern, timeout))
	return w
}

// BuildExe builds the main package pkg (an import path) for windows/amd64
// without cgo, into tb's temporary directory.
func BuildExe(tb testing.TB, pkg string) string {
	tb.Helper()
	exe := filepath.Join(tb.TempDir(), filepath.Base(pkg)+".exe")
	goWindows(tb, false, "build", "-o", exe, pkg)
	return exe
}

// BuildCgoExe builds the main package pkg (an import path, or "." for the
// one in the test's directory) as name.exe for windows/amd64 with cgo, by
// mingw-w64, into tb's temporary directory, and logs how long it took (the
// Go build cache keeps the C objects; from a cold cache the desktop app
// takes minutes).
func BuildCgoExe(tb testing.TB, pkg, name string) string {
	tb.Helper()
	exe := filepath.Join(tb.TempDir(), name+".exe")
	start := time.Now()
	goWindows(tb, true, "build", "-o", exe, pkg)
	tb.Logf("built %s for windows/amd64 with cgo (%s) in %s", name+".exe", mingwCC, time.Since(start).Round(100*time.Millisecond))
	return exe
}

// BuildTest compiles the tests of pkg (an import path) for windows/amd64
// without cgo, into tb's temporary directory.
func BuildTest(tb testing.TB, pkg string) string {
	tb.Helper()
	exe := filepath.Join(tb.TempDir(), filepath.Base(pkg)+".test.exe")
	goWindows(tb, false, "test", "-c", "-o", exe, pkg)
	return exe
}

func goWindows(tb testing.TB, cgo bool, args ...string) {
	tb.Helper()
	deadline, env := buildDeadline, []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=0"}
	if cgo {
		// CC by name, not path, as make cross gives it: the value is
		// part of the build cache's keys.
		lookPath(tb, mingwCC)
		deadline, env = cgoBuildDeadline, []string{"GOOS=windows", "GOARCH=amd64", "CGO_ENABLED=1", "CC=" + mingwCC}
	}
	ctx, cancel := context.WithTimeout(tb.Context(), deadline)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(runtime.GOROOT(), "bin", "go"), args...)
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("%s go %s for windows/amd64: %v\n%s", strings.Join(env, " "), strings.Join(args, " "), err, out)
	}
}

func lookPath(tb testing.TB, name string) string {
	tb.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		tb.Fatalf("%s is not installed: the Windows tests need %s (make test-windows installs them)", name, packages)
	}
	return p
}

func prefixEnv(prefix string) []string {
	// WINEDEBUG=-all: Wine's fixme lines would bury the programs' output.
	// No display: wineboot asks for none, and the programs of New open no
	// window.
	return []string{"WINEPREFIX=" + prefix, "WINEDEBUG=-all", "WINEDLLOVERRIDES=mscoree,mshtml=", "DISPLAY="}
}

// env is the environment of the prefix's wineserver and programs.
func (w *Wine) env() []string {
	return append(prefixEnv(w.Prefix), "DISPLAY="+w.display)
}

func (w *Wine) stopServer(tb testing.TB) {
	tb.Helper()
	if err := stopServer(w.server, w.Prefix); err != nil {
		tb.Errorf("stopping the wineserver of %s: %v", w.Prefix, err)
	}
}

// stopServer kills the prefix's wineserver (-k) and waits for it to go
// (-w), which also waits for its programs.
func stopServer(server, prefix string) error {
	ctx, cancel := context.WithTimeout(context.Background(), serverDeadline)
	defer cancel()
	for _, flag := range []string{"-k", "-w"} {
		cmd := exec.CommandContext(ctx, server, flag)
		cmd.Env = append(os.Environ(), prefixEnv(prefix)...)
		out, err := cmd.CombinedOutput()
		// -k with no server running exits 1: nothing to stop.
		if err != nil && !(flag == "-k" && cmd.ProcessState != nil && cmd.ProcessState.ExitCode() == 1) {
			return fmt.Errorf("wineserver %s: %w\n%s", flag, err, out)
		}
	}
	return nil
}

// ensureTemplate returns the booted template prefix for this Wine and shim,
// making it first if the cache has none: one process at a time, under a
// lock, since test binaries run in parallel.
func ensureTemplate(tb testing.TB, wine, server string) string {
	tb.Helper()
	version, err := exec.CommandContext(tb.Context(), wine, "--version").Output()
	if err != nil {
		tb.Fatalf("wine --version: %v", err)
	}
	c, _ := shim.ReadFile("shim/processprng.c")
	def, _ := shim.ReadFile("shim/processprng.def")
	sum := sha256.Sum256(append(append(append([]byte{}, version...), c...), def...))
	key := strings.TrimSpace(string(version)) + "-" + hex.EncodeToString(sum[:6])

	root := os.Getenv(CacheEnv)
	if root == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			tb.Fatalf("no cache dir for the Wine prefix (set %s): %v", CacheEnv, err)
		}
		root = filepath.Join(dir, "palyra", "wine")
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		tb.Fatalf("creating the Wine cache: %v", err)
	}
	lock := flock.New(filepath.Join(root, "lock"))
	ctx, cancel := context.WithTimeout(tb.Context(), bootDeadline+time.Minute)
	defer cancel()
	if ok, err := lock.TryLockContext(ctx, 100*time.Millisecond); !ok {
		tb.Fatalf("locking the Wine cache %s: %v", root, err)
	}
	defer lock.Unlock()

	template := filepath.Join(root, key)
	if _, err := os.Stat(filepath.Join(template, "ready")); err == nil {
		return template
	}
	tb.Logf("making the Wine prefix template %s (once per Wine version)", template)
	if err := bootTemplate(tb, wine, server, template); err != nil {
		tb.Fatalf("making the Wine prefix template: %v", err)
	}
	return template
}

// bootTemplate makes a booted prefix at dir with the shim in system32, and
// marks it ready last, so a half-made one is made again.
func bootTemplate(tb testing.TB, wine, server, dir string) error {
	tb.Helper()
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	src := filepath.Join(tb.TempDir(), "shim")
	if err := os.MkdirAll(src, 0o700); err != nil {
		return err
	}
	for _, name := range []string{"processprng.c", "processprng.def"} {
		b, _ := shim.ReadFile("shim/" + name)
		if err := os.WriteFile(filepath.Join(src, name), b, 0o600); err != nil {
			return err
		}
	}
	cc, err := exec.LookPath(mingwCC)
	if err != nil {
		return fmt.Errorf("%s is not installed: the Windows tests need %s (make test-windows installs them)", mingwCC, packages)
	}
	ctx, cancel := context.WithTimeout(tb.Context(), bootDeadline)
	defer cancel()
	dll := filepath.Join(src, "bcryptprimitives.dll")
	build := exec.CommandContext(ctx, cc, "-shared", "-O2", "-o", dll, "processprng.c", "processprng.def", "-ladvapi32")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building the ProcessPrng shim: %w\n%s", err, out)
	}
	// Into a file, not a pipe: the services wineboot starts keep their
	// output open until the server stops.
	log, err := os.Create(filepath.Join(src, "wineboot.log"))
	if err != nil {
		return err
	}
	defer log.Close()
	boot := exec.CommandContext(ctx, wine, "wineboot", "--init")
	boot.Env = append(os.Environ(), prefixEnv(dir)...)
	boot.Stdout, boot.Stderr = log, log
	if err := boot.Run(); err != nil {
		out, _ := os.ReadFile(log.Name())
		_ = stopServer(server, dir)
		return fmt.Errorf("wineboot: %w\n%s", err, out)
	}
	if err := stopServer(server, dir); err != nil {
		return err
	}
	if err := copyFile(dll, filepath.Join(dir, "drive_c", "windows", "system32", "bcryptprimitives.dll")); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "ready"), nil, 0o600)
}

// clonePrefix copies the template to dst. drive_c/windows (about 700 MB of
// DLLs that programs only read) is linked, but for its .ini files; the
// registry and the users' directories, which programs write, are copied.
func clonePrefix(template, dst string) error {
	shared := filepath.Join(template, "drive_c", "windows")
	return filepath.WalkDir(template, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(template, path)
		if err != nil {
			return err
		}
		if rel == "ready" || rel == "lock" {
			return nil
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o700)
		case d.Type()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			return os.Symlink(link, target)
		case strings.HasPrefix(path, shared+string(filepath.Separator)) && filepath.Ext(path) != ".ini":
			// A temporary dir on another file system than the cache
			// cannot hard-link: a symbolic link reads the same.
			if err := os.Link(path, target); err != nil {
				return os.Symlink(path, target)
			}
			return nil
		default:
			return copyFile(path, target)
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	fi, err := in.Stat()
	if err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, fi.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
