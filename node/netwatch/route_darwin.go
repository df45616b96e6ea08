package netwatch

import (
	"context"
	"fmt"
	"log/slog"
	"syscall"
)

func platformSources(ctx context.Context, log *slog.Logger, emit func(Kind, string)) {
	if err := watchRouteSocket(ctx, log, emit); err != nil {
		log.Warn("not watching for network changes", "err", err)
	}
}

// watchRouteSocket reports the route socket's address, route and
// interface changes until ctx ends.
func watchRouteSocket(ctx context.Context, log *slog.Logger, emit func(Kind, string)) error {
	fd, err := syscall.Socket(syscall.AF_ROUTE, syscall.SOCK_RAW, syscall.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("opening the route socket: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return fmt.Errorf("opening the route socket: %w", err)
	}
	readChanges(ctx, log, fd, "route", routeChanges, emit)
	return nil
}
