// Package testlog gives tests a logger that writes into the test's own
// log, so that what the code under test logged is shown beside the
// failure it explains (and with -v), and nowhere else.
package testlog

import (
	"log/slog"
	"testing"
)

// New returns a logger at debug level writing to t's log, with args (as
// for slog.Logger.With) on every line, e.g. New(t, "who", "gateway").
func New(t testing.TB, args ...any) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})).With(args...)
}
