package netwatch

import (
	"encoding/binary"
	"syscall"
	"testing"

	"github.com/palyra/palyra-go/internal/testlog"
	"github.com/palyra/palyra-go/internal/testlogind"
	"github.com/palyra/palyra-go/internal/testnetns"
)

// An address added and removed in the namespace is reported.
func TestNetlinkAddress(t *testing.T) {
	if !testnetns.Enter(t) {
		return
	}
	events := Watch(t.Context(), testlog.New(t))
	testnetns.Run(t, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
	if ev := next(t, events, Network); ev.Detail == "" {
		t.Errorf("event without detail: %+v", ev)
	}
	// Within the first burst's window or after it, the removal comes as
	// an event of its own.
	testnetns.Run(t, "ip", "addr", "del", "127.0.0.2/8", "dev", "lo")
	next(t, events, Network)
}

// A stand-in logind on a private bus sends PrepareForSleep(true), then
// (false): the watcher reports a wake.
func TestLogindWake(t *testing.T) {
	logind := testlogind.Start(t)
	events := Watch(t.Context(), testlog.New(t))
	logind.Sleep(t)
	logind.Wake(t)
	if ev := next(t, events, Wake); ev.Detail != "logind" {
		t.Errorf("wake from %q, want logind", ev.Detail)
	}
}

func TestNetlinkChanges(t *testing.T) {
	t.Parallel()
	msg := func(typ uint16) []byte {
		b := make([]byte, syscall.NLMSG_HDRLEN)
		binary.NativeEndian.PutUint32(b, syscall.NLMSG_HDRLEN)
		binary.NativeEndian.PutUint16(b[4:], typ)
		return b
	}
	got := netlinkChanges(append(msg(syscall.RTM_NEWADDR), msg(syscall.NLMSG_DONE)...))
	if len(got) != 1 || got[0] != "RTM_NEWADDR" {
		t.Errorf("netlinkChanges = %v", got)
	}
	if got := netlinkChanges([]byte{1, 2, 3}); got != nil {
		t.Errorf("a truncated read gave %v", got)
	}
}

func FuzzNetlinkChanges(f *testing.F) {
	f.Add(binary.NativeEndian.AppendUint16(binary.NativeEndian.AppendUint32(nil, 16), syscall.RTM_NEWADDR))
	f.Fuzz(func(t *testing.T, b []byte) { netlinkChanges(b) })
}
