//go:build !linux && !darwin && !windows

package netwatch

import (
	"context"
	"log/slog"
)

// platformSources: where there is no source of this package's own (the
// BSDs, say), only the clock check runs.
func platformSources(_ context.Context, log *slog.Logger, _ func(Kind, string)) {
	log.Debug("no network change notifications on this platform; the clock check notices sleep")
}
