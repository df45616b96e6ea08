// Package ulid implements ULIDs (https://github.com/ulid/spec): 128-bit
// identifiers made of a 48-bit big-endian Unix time in milliseconds and 80
// random bits, written as 26 characters of Crockford base32. Their text and
// byte forms both sort by time.
//
// The gateway names each invocation with one (its request_id).
//
// It owns the identifier only: it must not import anything of this module.
package ulid

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"io"
	"time"
)

// ULID is a ULID in its binary form: bytes 0–5 hold the time, 6–15 the
// random part. The zero value is the valid ULID "00000000000000000000000000".
type ULID [16]byte

// ErrInvalid is wrapped by every error of Parse and UnmarshalText.
var ErrInvalid = errors.New("invalid ULID")

// EncodedSize is the length of a ULID's text form.
const EncodedSize = 26

// MaxTime is the latest time a ULID can hold: 2^48−1 ms after the Unix
// epoch, in the year 10889.
var MaxTime = time.UnixMilli(1<<48 - 1).UTC()

// alphabet is Crockford's base32 alphabet (no I, L, O, U).
const alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

// invalid marks a byte that is not a digit of the alphabet in dec.
const invalid = 0xFF

// dec maps an ASCII byte, either case, to its value.
var dec = func() (d [256]byte) {
	for i := range d {
		d[i] = invalid
	}
	for i := 0; i < len(alphabet); i++ {
		c := alphabet[i]
		d[c] = byte(i)
		if 'A' <= c && c <= 'Z' {
			d[c+'a'-'A'] = byte(i)
		}
	}
	return d
}()

// New returns a ULID for now with its random part read from rand; nil means
// crypto/rand. now must lie between the Unix epoch and MaxTime.
func New(now time.Time, rand io.Reader) (ULID, error) {
	var u ULID
	ms := now.UnixMilli()
	if ms < 0 || ms >= 1<<48 || now.Before(time.Unix(0, 0)) {
		return u, fmt.Errorf("making ULID: time %s is before the Unix epoch or after %s", now.UTC().Format(time.RFC3339Nano),
			MaxTime.Format(time.RFC3339))
	}
	if rand == nil {
		rand = crand.Reader
	}
	if _, err := io.ReadFull(rand, u[6:]); err != nil {
		return ULID{}, fmt.Errorf("making ULID: reading random bits: %w", err)
	}
	for i := 5; i >= 0; i-- {
		u[i] = byte(ms)
		ms >>= 8
	}
	return u, nil
}

// Parse reads a ULID in its 26-character text form, in either case.
func Parse(s string) (ULID, error) {
	var u ULID
	if len(s) != EncodedSize {
		return u, fmt.Errorf("%w %q: length %d, want %d", ErrInvalid, clip(s), len(s), EncodedSize)
	}
	// Check every character before decoding, so the error names the first
	// bad one.
	for i := 0; i < len(s); i++ {
		if dec[s[i]] == invalid {
			return u, fmt.Errorf("%w %q: character %d (%q) is not in the alphabet %s",
				ErrInvalid, s, i+1, s[i:i+1], alphabet)
		}
	}
	// 26 characters carry 130 bits; the first may only hold the top 3.
	if dec[s[0]] > 7 {
		return u, fmt.Errorf("%w %q: first character %q is above '7', so the value overflows 128 bits",
			ErrInvalid, s, s[0])
	}
	// Decode as a 130-bit number, five bits at a time, into hi:lo.
	var hi, lo uint64
	for i := 0; i < len(s); i++ {
		hi = hi<<5 | lo>>59
		lo = lo<<5 | uint64(dec[s[i]])
	}
	for i := range 8 {
		u[i] = byte(hi >> (56 - 8*i))
		u[8+i] = byte(lo >> (56 - 8*i))
	}
	return u, nil
}

// clip shortens absurdly long input for an error message.
func clip(s string) string {
	const max = 40
	if len(s) > max {
		return s[:max] + "…"
	}
	return s
}

// String returns the 26-character, upper-case text form.
func (u ULID) String() string {
	var b [EncodedSize]byte
	u.encode(b[:])
	return string(b[:])
}

func (u ULID) encode(b []byte) {
	var hi, lo uint64
	for i := range 8 {
		hi = hi<<8 | uint64(u[i])
		lo = lo<<8 | uint64(u[8+i])
	}
	for i := EncodedSize - 1; i >= 0; i-- {
		b[i] = alphabet[lo&0x1F]
		lo = lo>>5 | hi<<59
		hi >>= 5
	}
}

// Time returns the time part, in UTC, at millisecond precision.
func (u ULID) Time() time.Time {
	var ms int64
	for i := range 6 {
		ms = ms<<8 | int64(u[i])
	}
	return time.UnixMilli(ms).UTC()
}

// IsZero reports whether u is the zero ULID.
func (u ULID) IsZero() bool { return u == ULID{} }

// MarshalText implements encoding.TextMarshaler.
func (u ULID) MarshalText() ([]byte, error) {
	b := make([]byte, EncodedSize)
	u.encode(b)
	return b, nil
}

// UnmarshalText implements encoding.TextUnmarshaler with Parse's rules.
func (u *ULID) UnmarshalText(b []byte) error {
	v, err := Parse(string(b))
	if err != nil {
		return err
	}
	*u = v
	return nil
}
