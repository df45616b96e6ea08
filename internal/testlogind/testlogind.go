// Package testlogind stands in for logind in tests: a private dbus-daemon
// becomes the system bus (DBUS_SYSTEM_BUS_ADDRESS), and a connection on it
// owns org.freedesktop.login1 and sends PrepareForSleep as logind does
// around a suspend.
package testlogind

import (
	"bufio"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/godbus/dbus/v5"
)

// Logind is the stand-in.
type Logind struct {
	conn *dbus.Conn
}

// Start starts a bus for the test (dbus-daemon with its session
// configuration, which lets anyone own any name, as logind does on the
// system bus), points DBUS_SYSTEM_BUS_ADDRESS at it for the rest of the
// test, and owns logind's name there. Start it before what should hear
// the signals connects.
func Start(tb testing.TB) *Logind {
	tb.Helper()
	tb.Setenv("DBUS_SYSTEM_BUS_ADDRESS", privateBus(tb))
	conn, err := dbus.ConnectSystemBus()
	if err != nil {
		tb.Fatalf("connecting to the private bus: %v", err)
	}
	tb.Cleanup(func() { conn.Close() })
	if reply, err := conn.RequestName("org.freedesktop.login1", dbus.NameFlagDoNotQueue); err != nil || reply != dbus.RequestNameReplyPrimaryOwner {
		tb.Fatalf("owning org.freedesktop.login1: %v %v", reply, err)
	}
	return &Logind{conn: conn}
}

// Sleep sends PrepareForSleep(true), as logind does before a suspend.
func (l *Logind) Sleep(tb testing.TB) { l.prepareForSleep(tb, true) }

// Wake sends PrepareForSleep(false), as logind does on resume.
func (l *Logind) Wake(tb testing.TB) { l.prepareForSleep(tb, false) }

func (l *Logind) prepareForSleep(tb testing.TB, sleeping bool) {
	tb.Helper()
	if err := l.conn.Emit("/org/freedesktop/login1", "org.freedesktop.login1.Manager.PrepareForSleep", sleeping); err != nil {
		tb.Fatalf("sending PrepareForSleep(%v): %v", sleeping, err)
	}
}

// privateBus starts a dbus-daemon until the test ends and returns its
// address.
func privateBus(tb testing.TB) string {
	tb.Helper()
	sock := filepath.Join(tb.TempDir(), "bus")
	cmd := exec.Command("dbus-daemon", "--session", "--nofork", "--print-address", "--address=unix:path="+sock)
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting dbus-daemon (package dbus): %v", err)
	}
	tb.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addr, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		tb.Fatalf("reading the bus address: %v", err)
	}
	return strings.TrimSpace(addr)
}
