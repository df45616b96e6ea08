package carrier

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// ErrBusy is what a *BusyError is: the gateway could not check or record a
// node because its store failed (locked past its busy timeout, read-only,
// out of files), which says nothing about the device. The node is told to
// retry later, and never that its certificate is bad.
var ErrBusy = errors.New("gateway busy")

// The range of the wait a busy gateway asks for. Whole seconds drawn at
// random, so that nodes refused together (a reconnect storm) come back
// spread over it rather than together.
const (
	BusyRetryMin = 2 * time.Second
	BusyRetryMax = 10 * time.Second
)

// BusyError is a store failure while serving a node, with the wait the node
// is asked for.
type BusyError struct {
	RetryAfter time.Duration
	Err        error
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("gateway busy (the node is asked to retry in %d s): %v", int(e.RetryAfter/time.Second), e.Err)
}

// Unwrap makes errors.Is(err, ErrBusy) hold, and keeps the store's error
// in the chain.
func (e *BusyError) Unwrap() []error { return []error{ErrBusy, e.Err} }

// Busy wraps err, a store failure, with a wait drawn from [BusyRetryMin,
// BusyRetryMax] in whole seconds.
func Busy(err error) *BusyError {
	lo, hi := int64(BusyRetryMin/time.Second), int64(BusyRetryMax/time.Second)
	return &BusyError{RetryAfter: time.Duration(lo+rand.Int64N(hi-lo+1)) * time.Second, Err: err}
}
