package pairing

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// PIN layout: a public selector that tells the gateway which open code is
// meant, the secret digits that only the PAKE ever uses, and a Damm check
// digit so that a typo is caught before any network attempt is spent.
const (
	SelectorDigits = 2
	SecretDigits   = 6
	PINDigits      = SelectorDigits + SecretDigits + 1
	// LinkSecretSize is the size of the secret a pairing link carries.
	LinkSecretSize = 16
)

// ErrInvalidPIN is wrapped by every PIN parsing error.
var ErrInvalidPIN = errors.New("invalid PIN")

// Code is a pairing code as the gateway mints and keeps it: one selector with
// two secrets, the PIN's digits for typing and a 128-bit secret for links and
// QR codes. Either one pairs the device.
type Code struct {
	_          [0]func() // incomparable: secrets are compared in constant time only
	Selector   string
	PINSecret  string // SecretDigits decimal digits
	LinkSecret []byte // LinkSecretSize bytes
}

// NewCode mints a code for the given selector. The PIN's secret is never
// trivial (repeats, runs, short patterns), so a person cannot guess it from
// habit.
func NewCode(rand io.Reader, selector string) (*Code, error) {
	if err := checkSelector(selector); err != nil {
		return nil, err
	}
	c := &Code{Selector: selector, LinkSecret: make([]byte, LinkSecretSize)}
	if _, err := io.ReadFull(rand, c.LinkSecret); err != nil {
		return nil, fmt.Errorf("generating link secret: %w", err)
	}
	// Rejection sampling: trivial secrets are a tiny fraction, so this ends
	// after one or two draws; the bound only guards against a broken reader.
	for range 1000 {
		digits, err := randomDigits(rand, SecretDigits)
		if err != nil {
			return nil, fmt.Errorf("generating PIN: %w", err)
		}
		if !isTrivial(digits) && !isTrivial(selector+digits) {
			c.PINSecret = digits
			return c, nil
		}
	}
	return nil, errors.New("generating PIN: random source keeps producing trivial PINs")
}

// RandomSelector draws a selector; the gateway draws again while it collides
// with an open code.
func RandomSelector(rand io.Reader) (string, error) {
	return randomDigits(rand, SelectorDigits)
}

// PIN returns the PIN a person types for this code.
func (c *Code) PIN() PIN {
	return PIN{digits: c.Selector + c.PINSecret + string(dammDigit(c.Selector+c.PINSecret))}
}

// String never shows the secrets.
func (c *Code) String() string { return "pairing code " + c.Selector + " (secrets redacted)" }

// LogValue keeps the secrets out of structured logs.
func (c *Code) LogValue() slog.Value { return slog.StringValue(c.String()) }

// password returns the CPace password for the secret the device claims to
// know, with the kind bound in so the two secrets can never be confused.
func (c *Code) password(kind secretKind) ([]byte, error) {
	switch kind {
	case kindPIN:
		return passwordFor(kindPIN, []byte(c.PINSecret)), nil
	case kindLink:
		if len(c.LinkSecret) != LinkSecretSize {
			return nil, errors.New("pairing code has no link secret")
		}
		return passwordFor(kindLink, c.LinkSecret), nil
	}
	return nil, fmt.Errorf("unknown secret kind %d", kind)
}

// PIN is a parsed pairing PIN. Its String form is redacted; Display gives the
// digits for showing to the person who will type them.
type PIN struct {
	_      [0]func()
	digits string // PINDigits digits, check digit included
}

// ParsePIN reads a PIN as a person typed it: spaces, dashes and dots are
// ignored. A wrong check digit is reported as a typo, locally.
func ParsePIN(s string) (PIN, error) {
	if len(s) > 64 {
		return PIN{}, fmt.Errorf("%w: too long; a PIN has %d digits", ErrInvalidPIN, PINDigits)
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '\t':
		default:
			return PIN{}, fmt.Errorf("%w: %q is not a digit; a PIN has %d digits like 123-456-789", ErrInvalidPIN, r, PINDigits)
		}
	}
	digits := b.String()
	if len(digits) != PINDigits {
		return PIN{}, fmt.Errorf("%w: it has %d digits, a PIN has %d", ErrInvalidPIN, len(digits), PINDigits)
	}
	if dammDigit(digits[:PINDigits-1]) != digits[PINDigits-1] {
		return PIN{}, fmt.Errorf("%w: the digits do not check out; please look for a typo", ErrInvalidPIN)
	}
	return PIN{digits: digits}, nil
}

// Display returns the PIN grouped as 123-456-789, for showing to a person.
func (p PIN) Display() string {
	if p.digits == "" {
		return ""
	}
	return p.digits[0:3] + "-" + p.digits[3:6] + "-" + p.digits[6:9]
}

// Selector is the public part of the PIN.
func (p PIN) Selector() string {
	if p.digits == "" {
		return ""
	}
	return p.digits[:SelectorDigits]
}

// Equal compares two PINs in constant time.
func (p PIN) Equal(o PIN) bool {
	return subtle.ConstantTimeCompare([]byte(p.digits), []byte(o.digits)) == 1
}

// String never shows the secret digits.
func (p PIN) String() string { return "PIN " + p.Selector() + "-…" }

// LogValue keeps the secret digits out of structured logs.
func (p PIN) LogValue() slog.Value { return slog.StringValue(p.String()) }

func (p PIN) secret() secret {
	return secret{selector: p.Selector(), kind: kindPIN, value: []byte(p.digits[SelectorDigits : PINDigits-1])}
}

// checkSelector accepts exactly SelectorDigits decimal digits.
func checkSelector(s string) error {
	if len(s) != SelectorDigits {
		return fmt.Errorf("selector %q: want %d digits", s, SelectorDigits)
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return fmt.Errorf("selector %q: want %d digits", s, SelectorDigits)
		}
	}
	return nil
}

// randomDigits draws n uniform decimal digits (rejection sampling on bytes,
// so no digit is more likely than another).
func randomDigits(rand io.Reader, n int) (string, error) {
	out := make([]byte, 0, n)
	var buf [32]byte
	for len(out) < n {
		if _, err := io.ReadFull(rand, buf[:]); err != nil {
			return "", err
		}
		for _, b := range buf {
			if b < 250 && len(out) < n {
				out = append(out, '0'+b%10)
			}
		}
	}
	return string(out), nil
}

// isTrivial reports digit strings a person might guess: few distinct digits,
// a short repeating pattern (121212, 123123), or a run up or down (345678,
// 987654, 890123).
func isTrivial(d string) bool {
	distinct := map[byte]bool{}
	for i := range len(d) {
		distinct[d[i]] = true
	}
	if len(distinct) <= 2 {
		return true
	}
	for period := 1; period <= 3; period++ {
		repeats := true
		for i := period; i < len(d); i++ {
			if d[i] != d[i-period] {
				repeats = false
				break
			}
		}
		if repeats {
			return true
		}
	}
	for _, step := range []int{1, 9} { // +1 and -1 modulo 10
		run := true
		for i := 1; i < len(d); i++ {
			if int(d[i]-'0') != (int(d[i-1]-'0')+step)%10 {
				run = false
				break
			}
		}
		if run {
			return true
		}
	}
	return false
}

// dammTable is the quasigroup of the Damm algorithm, which detects every
// single-digit error and every adjacent transposition.
var dammTable = [10][10]byte{
	{0, 3, 1, 7, 5, 9, 8, 6, 4, 2},
	{7, 0, 9, 2, 1, 5, 4, 8, 6, 3},
	{4, 2, 0, 6, 8, 7, 1, 3, 5, 9},
	{1, 7, 5, 0, 9, 8, 3, 4, 2, 6},
	{6, 1, 2, 3, 0, 4, 5, 9, 7, 8},
	{3, 6, 7, 4, 2, 0, 9, 5, 8, 1},
	{5, 8, 6, 9, 7, 2, 0, 1, 3, 4},
	{8, 9, 4, 5, 3, 6, 2, 0, 1, 7},
	{9, 4, 3, 8, 6, 1, 7, 2, 0, 5},
	{2, 5, 8, 1, 4, 3, 6, 7, 9, 0},
}

// dammDigit returns the check digit for a string of decimal digits.
func dammDigit(digits string) byte {
	var interim byte
	for i := range len(digits) {
		interim = dammTable[interim][digits[i]-'0']
	}
	return '0' + interim
}
