//go:build !linux && !darwin

package builtin

import "context"

// Elsewhere these facts would need cgo or platform calls not worth their
// weight yet; system.info leaves them out.

func kernelRelease(context.Context) (string, bool) { return "", false }

func uptimeSeconds(context.Context) (int64, bool) { return 0, false }

func memoryTotal(context.Context) (uint64, bool) { return 0, false }
