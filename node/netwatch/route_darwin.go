package netwatch

import (
	"context"
	"fmt"
	"log/slog"
	"os"
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
	// Read through the runtime's poller, so Close ends a Read.
	f := os.NewFile(uintptr(fd), "route")
	context.AfterFunc(ctx, func() { f.Close() })
	go func() {
		buf := make([]byte, 1<<16)
		for {
			n, err := f.Read(buf)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("reading route changes stopped", "err", err)
				}
				return
			}
			if names := routeChanges(buf[:n]); len(names) > 0 {
				emit(Network, names[0])
			}
		}
	}()
	return nil
}
