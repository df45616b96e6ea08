//go:build !linux && !darwin

package netwatch

import (
	"context"
	"log/slog"
)

// platformSources: on Windows (and elsewhere) only the clock check runs
// for now; NotifyIpInterfaceChange and the power broadcast would need a
// cgo-free binding to iphlpapi and a message window, not written yet.
func platformSources(_ context.Context, log *slog.Logger, _ func(Kind, string)) {
	log.Debug("no network change notifications on this platform; the clock check notices sleep")
}
