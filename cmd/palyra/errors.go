package main

import (
	"errors"
	"strings"
)

// shorten is err for a person at a terminal: what was being done (the
// outermost message) and why it failed (the innermost cause), without
// the layers between. --verbose and --json's "detail" have it whole.
//
// A layer counts when its message ends with the message of the error it
// wraps ("reading X: " + cause); a message that puts its cause elsewhere
// ("invalid PIN: it has 8 digits") is read as one, since its words only
// make sense together.
func shorten(err error) string {
	full := err.Error()
	outer, cause := "", full
	for e := err; ; {
		inner := errors.Unwrap(e)
		if inner == nil {
			break
		}
		msg, in := e.Error(), inner.Error()
		own, ok := strings.CutSuffix(msg, ": "+in)
		if !ok || own == "" {
			break
		}
		if outer == "" {
			outer = own
		}
		e, cause = inner, in
	}
	if outer == "" {
		return full
	}
	return outer + ": " + cause
}
