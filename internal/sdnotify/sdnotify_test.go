package sdnotify

import (
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// listen is a stand-in service manager: a unixgram socket at name.
func listen(t *testing.T, name string) *net.UnixConn {
	t.Helper()
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func receive(t *testing.T, conn *net.UnixConn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatalf("no notification arrived: %v", err)
	}
	return string(buf[:n])
}

func TestNotifyPathSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "notify")
	conn := listen(t, path)
	t.Setenv("NOTIFY_SOCKET", path)
	if sent, err := Notify(Ready); !sent || err != nil {
		t.Fatalf("Notify: %v, %v", sent, err)
	}
	if got := receive(t, conn); got != Ready {
		t.Errorf("got %q, want %q", got, Ready)
	}
}

func TestNotifyAbstractSocket(t *testing.T) {
	name := "@palyra-sdnotify-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	conn := listen(t, name)
	t.Setenv("NOTIFY_SOCKET", name)
	if sent, err := Notify(Stopping); !sent || err != nil {
		t.Fatalf("Notify: %v, %v", sent, err)
	}
	if got := receive(t, conn); got != Stopping {
		t.Errorf("got %q, want %q", got, Stopping)
	}
}

func TestNotifyWithoutServiceManager(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "")
	if sent, err := Notify(Ready); sent || err != nil {
		t.Errorf("Notify without NOTIFY_SOCKET: %v, %v; want false, nil", sent, err)
	}
}

func TestNotifyRefusesOddSocket(t *testing.T) {
	t.Setenv("NOTIFY_SOCKET", "relative/notify")
	if _, err := Notify(Ready); err == nil || !strings.Contains(err.Error(), "neither a path nor an abstract socket") {
		t.Errorf("Notify: %v", err)
	}
}
