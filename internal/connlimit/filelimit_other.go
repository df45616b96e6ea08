//go:build !linux && !darwin

package connlimit

// fileLimit knows no limit here: Windows has no per-process cap on open
// handles of the kind RLIMIT_NOFILE is.
func fileLimit() uint64 { return 0 }
