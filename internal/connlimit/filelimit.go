package connlimit

import (
	"fmt"
	"math"
)

// Reserve is how many open files Budget keeps out of the caps' reach for
// everything else a server has open: its store, listeners, admin and
// metrics connections, logs.
const Reserve = 256

// FileLimit is the process's open-file limit (the soft RLIMIT_NOFILE), or 0
// where there is none to read (Windows). There is nothing to raise: at
// start the Go runtime (package syscall's init, Go 1.19 and later) has
// already raised the soft limit to the hard one, less one, on Linux and
// macOS alike (on macOS to kern.maxfilesperproc at most); what remains is
// to keep the caps under it.
func FileLimit() uint64 { return fileLimit() }

// Budget is the most unauthenticated connections that fit under an
// open-file limit: half of what Reserve leaves, so that at least as many
// files stay for the connections of clients that did authenticate (paired
// nodes on TCP). It is 0 when the limit leaves nothing, and MaxInt32 for
// limit 0 (none known).
func Budget(limit uint64) int {
	if limit == 0 {
		return math.MaxInt32
	}
	if limit <= Reserve {
		return 0
	}
	return int(min((limit-Reserve)/2, math.MaxInt32))
}

// Size is the cap to use when want was asked for (0: def; negative: no
// cap, returned as 0) under the open-file limit limit (0: unknown). A
// default is lowered to fit the Budget; a cap asked for that does not fit
// is an error that says what to do, as is a limit too low for any.
func Size(what string, want, def int, limit uint64) (int, error) {
	budget := Budget(limit)
	if want < 0 {
		return 0, nil
	}
	if budget == 0 {
		return 0, fmt.Errorf("the open-file limit (ulimit -n) is %d, too low to leave room for any %s beside the %d files kept for the store and listeners; raise it", limit, what, Reserve)
	}
	if want == 0 {
		return min(def, budget), nil
	}
	if want > budget {
		return 0, fmt.Errorf("a cap of %d %s does not fit the open-file limit (ulimit -n) of %d: at most %d leave as many files again for paired nodes and %d for the store and listeners; raise the limit or lower the cap", want, what, limit, budget, Reserve)
	}
	return want, nil
}
