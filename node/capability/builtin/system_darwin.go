package builtin

import (
	"context"
	"time"

	"golang.org/x/sys/unix"
)

// On macOS the same facts come from uname and sysctl, which x/sys/unix
// reaches without cgo.

func kernelRelease(context.Context) (string, bool) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", false
	}
	return unix.ByteSliceToString(u.Release[:]), true
}

func uptimeSeconds(context.Context) (int64, bool) {
	tv, err := unix.SysctlTimeval("kern.boottime")
	if err != nil {
		return 0, false
	}
	boot := time.Unix(tv.Sec, int64(tv.Usec)*1000)
	return int64(time.Since(boot).Seconds()), true
}

func memoryTotal(context.Context) (uint64, bool) {
	n, err := unix.SysctlUint64("hw.memsize")
	if err != nil {
		return 0, false
	}
	return n, true
}
