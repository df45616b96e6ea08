package netwatch

import (
	"fmt"
	"log/slog"
	"sync"
)

// What Windows' notification callbacks report, and what Watch makes of
// it. It is kept apart from the system calls (notify_windows.go) and
// without a build tag, so that it builds, and is tested, everywhere.

// MIB_NOTIFICATION_TYPE (netioapi.h): what NotifyIpInterfaceChange's
// callback is told happened to an interface.
const (
	mibParameterNotification = 0
	mibAddInstance           = 1
	mibDeleteInstance        = 2
	mibInitialNotification   = 3
)

// Power broadcast events (winuser.h), as PowerRegisterSuspendResumeNotification's
// callback receives them.
const (
	pbtAPMSuspend         = 0x4
	pbtAPMResumeSuspend   = 0x7
	pbtAPMResumeAutomatic = 0x12
)

// ipInterfaceEvent is what an IP interface notification of type typ
// means: a network change named after the type. The initial notification
// (sent only when asked for; Watch does not ask) is no change; a type
// newer than these is one.
func ipInterfaceEvent(typ uint32) (Kind, string, bool) {
	switch typ {
	case mibParameterNotification:
		return Network, "MibParameterNotification", true
	case mibAddInstance:
		return Network, "MibAddInstance", true
	case mibDeleteInstance:
		return Network, "MibDeleteInstance", true
	case mibInitialNotification:
		return "", "", false
	}
	return Network, fmt.Sprintf("MIB_NOTIFICATION_TYPE(%d)", typ), true
}

// powerEvent is what a power broadcast event means: resuming from suspend
// (PBT_APMRESUMEAUTOMATIC always, PBT_APMRESUMESUSPEND too when someone is
// at the machine; the debouncer makes one wake of the pair) is a wake.
// Suspending only ends a burst (asleep), so that the wake after it is
// passed on at once.
func powerEvent(typ uint32) (Kind, string, bool) {
	switch typ {
	case pbtAPMResumeAutomatic, pbtAPMResumeSuspend:
		return Wake, "power", true
	}
	return "", "", false
}

// onIPInterfaceChange handles IP interface notifications for one Watch.
func onIPInterfaceChange(emit func(Kind, string)) func(uint32) {
	return func(typ uint32) {
		if kind, detail, ok := ipInterfaceEvent(typ); ok {
			emit(kind, detail)
		}
	}
}

// onPowerEvent handles power broadcast events for one Watch.
func onPowerEvent(log *slog.Logger, emit func(Kind, string)) func(uint32) {
	return func(typ uint32) {
		if typ == pbtAPMSuspend {
			log.Info("power: going to sleep")
			emit(asleep, "power")
			return
		}
		if kind, detail, ok := powerEvent(typ); ok {
			log.Info("power: woke up", "event", fmt.Sprintf("%#x", typ))
			emit(kind, detail)
		}
	}
}

// callbackSinks hands what a system callback reports to the Watch that
// registered for it. Each kind of notification has one callback for the
// whole process, since a callback made with syscall.NewCallback is never
// freed and a process can make only about a thousand, while every
// Agent.Run starts a Watch. Windows passes the callback the key a Watch
// registered under as its context: a plain number, not a Go pointer held
// by the system.
type callbackSinks struct {
	mu sync.Mutex
	// next and handle are guarded by mu.
	next   uintptr
	handle map[uintptr]func(uint32)
}

// add registers handle and returns its key, never 0.
func (s *callbackSinks) add(handle func(uint32)) uintptr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.handle == nil {
		s.handle = map[uintptr]func(uint32){}
	}
	s.next++
	s.handle[s.next] = handle
	return s.next
}

func (s *callbackSinks) remove(key uintptr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.handle, key)
}

// deliver hands a notification to the handler registered under key, and
// reports whether there was one: a notification that races its Watch's
// end finds none and is dropped.
func (s *callbackSinks) deliver(key uintptr, typ uint32) bool {
	s.mu.Lock()
	handle := s.handle[key]
	s.mu.Unlock()
	if handle == nil {
		return false
	}
	handle(typ)
	return true
}
