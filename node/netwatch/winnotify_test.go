package netwatch

import (
	"log/slog"
	"strings"
	"testing"

	"github.com/palyra/palyra-go/internal/syncbuf"
)

// What Windows' callbacks report, as Watch emits it (the system calls
// themselves are only compiled here; see notify_windows.go).
func TestWindowsNotifications(t *testing.T) {
	t.Parallel()
	type event struct {
		kind   Kind
		detail string
	}
	for _, tc := range []struct {
		name   string
		handle func(log *slog.Logger, emit func(Kind, string)) func(uint32)
		typ    uint32
		want   []event
		logged string
	}{
		{"interface parameters", ipHandler, mibParameterNotification, []event{{Network, "MibParameterNotification"}}, ""},
		{"interface added", ipHandler, mibAddInstance, []event{{Network, "MibAddInstance"}}, ""},
		{"interface deleted", ipHandler, mibDeleteInstance, []event{{Network, "MibDeleteInstance"}}, ""},
		{"initial notification", ipHandler, mibInitialNotification, nil, ""},
		{"newer notification type", ipHandler, 7, []event{{Network, "MIB_NOTIFICATION_TYPE(7)"}}, ""},
		{"resume automatic", onPowerEvent, pbtAPMResumeAutomatic, []event{{Wake, "power"}}, "power: woke up"},
		{"resume by the user", onPowerEvent, pbtAPMResumeSuspend, []event{{Wake, "power"}}, "power: woke up"},
		{"suspend", onPowerEvent, pbtAPMSuspend, []event{{asleep, "power"}}, "power: going to sleep"},
		{"power status change", onPowerEvent, 0xa, nil, ""},
		{"power setting change", onPowerEvent, 0x8013, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncbuf.Buffer
			var got []event
			tc.handle(slog.New(slog.NewTextHandler(&logs, nil)), func(k Kind, d string) { got = append(got, event{k, d}) })(tc.typ)
			if len(got) != len(tc.want) || len(got) == 1 && got[0] != tc.want[0] {
				t.Errorf("type %#x emitted %v, want %v", tc.typ, got, tc.want)
			}
			if tc.logged != "" && !strings.Contains(logs.String(), tc.logged) || tc.logged == "" && logs.String() != "" {
				t.Errorf("type %#x logged %q, want %q", tc.typ, logs.String(), tc.logged)
			}
		})
	}
}

func ipHandler(_ *slog.Logger, emit func(Kind, string)) func(uint32) {
	return onIPInterfaceChange(emit)
}

// A callback's context key reaches the Watch registered under it and no
// other; after remove (the Watch ended) a late notification is dropped.
func TestCallbackSinks(t *testing.T) {
	t.Parallel()
	var s callbackSinks
	got := map[string][]uint32{}
	a := s.add(func(typ uint32) { got["a"] = append(got["a"], typ) })
	b := s.add(func(typ uint32) { got["b"] = append(got["b"], typ) })
	if a == 0 || b == 0 || a == b {
		t.Fatalf("keys %d and %d: want two different, non-zero", a, b)
	}
	if !s.deliver(a, 1) || !s.deliver(b, 2) || !s.deliver(a, 3) {
		t.Fatal("a registered key was not delivered to")
	}
	s.remove(a)
	if s.deliver(a, 4) {
		t.Error("delivered to a removed key")
	}
	if s.deliver(b+1, 5) {
		t.Error("delivered to a key never handed out")
	}
	if c := s.add(func(uint32) {}); c == a || c == b {
		t.Errorf("key %d handed out again", c)
	}
	if len(got["a"]) != 2 || got["a"][0] != 1 || got["a"][1] != 3 || len(got["b"]) != 1 || got["b"][0] != 2 {
		t.Errorf("delivered %v", got)
	}
}
