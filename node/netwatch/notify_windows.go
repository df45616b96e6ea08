package netwatch

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/windows"
)

// The system calls of the Windows sources. Under Wine, where this
// project's Windows code runs, the subscriptions are made and cancelled
// (TestSystemSubscriptions), but no notification ever comes; what the
// callbacks report is handled, and tested on every OS, in winnotify.go.

var (
	// NotifyIpInterfaceChange is called through its own proc, not
	// x/sys/windows' wrapper, so that the callback's context can be a
	// number (a callbackSinks key) without an unsafe.Pointer made from it.
	procNotifyIpInterfaceChange = windows.NewLazySystemDLL("iphlpapi.dll").NewProc("NotifyIpInterfaceChange")

	powrprof                                     = windows.NewLazySystemDLL("powrprof.dll")
	procPowerRegisterSuspendResumeNotification   = powrprof.NewProc("PowerRegisterSuspendResumeNotification")
	procPowerUnregisterSuspendResumeNotification = powrprof.NewProc("PowerUnregisterSuspendResumeNotification")

	ipInterfaceSinks, powerSinks callbackSinks

	// One callback of each kind for the process (see callbackSinks). They
	// run on a system thread and must not block: the handlers only log and
	// emit, which never waits.
	ipInterfaceCallback = sync.OnceValue(func() uintptr {
		// PIPINTERFACE_CHANGE_CALLBACK(CallerContext, Row, NotificationType)
		return windows.NewCallback(func(key, _ uintptr, typ uint32) uintptr {
			ipInterfaceSinks.deliver(key, typ)
			return 0
		})
	})
	powerCallback = sync.OnceValue(func() uintptr {
		// DEVICE_NOTIFY_CALLBACK_ROUTINE(Context, Type, Setting)
		return windows.NewCallback(func(key uintptr, typ uint32, _ uintptr) uintptr {
			powerSinks.deliver(key, typ)
			return 0 // ERROR_SUCCESS
		})
	})
)

func platformSources(ctx context.Context, log *slog.Logger, emit func(Kind, string)) {
	if err := watchIPInterfaces(ctx, log, emit); err != nil {
		log.Warn("not watching for network changes", "err", err)
	}
	if err := watchPower(ctx, log, emit); err != nil {
		log.Info("not watching for resume from suspend; the clock check will notice sleep", "err", err)
	}
}

// watchIPInterfaces reports IP interface changes (IPv4 and IPv6: addresses
// coming and going, connectivity, metrics) until ctx ends.
func watchIPInterfaces(ctx context.Context, log *slog.Logger, emit func(Kind, string)) error {
	if err := procNotifyIpInterfaceChange.Find(); err != nil {
		return fmt.Errorf("subscribing to IP interface changes: %w", err)
	}
	key := ipInterfaceSinks.add(onIPInterfaceChange(emit))
	var h windows.Handle
	// No initial notification (FALSE): only changes from now on.
	r, _, _ := procNotifyIpInterfaceChange.Call(windows.AF_UNSPEC, ipInterfaceCallback(), key, 0, uintptr(unsafe.Pointer(&h)))
	if r != 0 {
		ipInterfaceSinks.remove(key)
		return fmt.Errorf("subscribing to IP interface changes (NotifyIpInterfaceChange): %w", windows.Errno(r))
	}
	context.AfterFunc(ctx, func() {
		// Once it returns, no callback runs for h any more; it must not
		// be called from one, which this goroutine is not.
		if err := windows.CancelMibChangeNotify2(h); err != nil {
			log.Warn("cancelling IP interface change notifications", "err", err)
		}
		ipInterfaceSinks.remove(key)
	})
	return nil
}

// DEVICE_NOTIFY_CALLBACK: the recipient is a DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS,
// no window.
const deviceNotifyCallback = 2

// deviceNotifySubscribeParameters is DEVICE_NOTIFY_SUBSCRIBE_PARAMETERS.
type deviceNotifySubscribeParameters struct {
	callback uintptr
	context  uintptr
}

// watchPower reports resuming from suspend until ctx ends, through
// PowerRegisterSuspendResumeNotification (Windows 8 and later), which needs
// no message window.
func watchPower(ctx context.Context, log *slog.Logger, emit func(Kind, string)) error {
	for _, p := range []*windows.LazyProc{procPowerRegisterSuspendResumeNotification, procPowerUnregisterSuspendResumeNotification} {
		if err := p.Find(); err != nil {
			return fmt.Errorf("subscribing to suspend and resume: %w", err)
		}
	}
	key := powerSinks.add(onPowerEvent(log, emit))
	// Kept alive until unregistered: the API does not say that it copies
	// the parameters.
	params := &deviceNotifySubscribeParameters{callback: powerCallback(), context: key}
	var h uintptr // HPOWERNOTIFY
	r, _, _ := procPowerRegisterSuspendResumeNotification.Call(deviceNotifyCallback, uintptr(unsafe.Pointer(params)), uintptr(unsafe.Pointer(&h)))
	if r != 0 {
		powerSinks.remove(key)
		return fmt.Errorf("subscribing to suspend and resume (PowerRegisterSuspendResumeNotification): %w", windows.Errno(r))
	}
	context.AfterFunc(ctx, func() {
		if r, _, _ := procPowerUnregisterSuspendResumeNotification.Call(h); r != 0 {
			log.Warn("cancelling suspend and resume notifications", "err", windows.Errno(r))
		}
		runtime.KeepAlive(params)
		powerSinks.remove(key)
	})
	return nil
}
