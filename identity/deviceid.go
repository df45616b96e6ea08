package identity

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// DeviceID identifies a device. It is the first 20 bytes of the SHA-256 of the
// device's raw 32-byte Ed25519 public key, so it stays the same when the
// device's certificate is renewed.
//
// Its text form follows syncthing's device IDs: the 20 bytes in base32
// (RFC 4648 alphabet, no padding) give 32 characters, split into 4 chunks of
// 8, each followed by a Luhn mod 32 check character; the 36 characters are
// shown as 6 groups of 6 separated by '-':
//
//	EH7DDX-5BYKSR-GCYTLY-7BKAI3-6STE4N-XX3KLZ
//
// The zero DeviceID means "no device".
type DeviceID [20]byte

const (
	deviceIDChunks   = 4                                       // check-summed chunks
	deviceIDChunkLen = 8                                       // base32 characters per chunk
	deviceIDTextLen  = deviceIDChunks * (deviceIDChunkLen + 1) // 36
	deviceIDGroupLen = 6                                       // characters per displayed group
	deviceURIPrefix  = "urn:palyra:device:"
	base32Alphabet   = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
)

var base32NoPad = base32.StdEncoding.WithPadding(base32.NoPadding)

// base32Values maps a byte of base32Alphabet to its value and anything else
// to -1.
var base32Values = func() (t [256]int8) {
	for i := range t {
		t[i] = -1
	}
	for i := range len(base32Alphabet) {
		t[base32Alphabet[i]] = int8(i)
	}
	return t
}()

// DeviceIDFromPublicKey derives the DeviceID of an Ed25519 public key.
func DeviceIDFromPublicKey(pub ed25519.PublicKey) DeviceID {
	sum := sha256.Sum256(pub)
	var id DeviceID
	copy(id[:], sum[:len(id)])
	return id
}

// compact returns the 36 characters of the ID's text form without separators.
func (id DeviceID) compact() [deviceIDTextLen]byte {
	var raw [deviceIDChunks * deviceIDChunkLen]byte
	base32NoPad.Encode(raw[:], id[:])
	var out [deviceIDTextLen]byte
	for c := range deviceIDChunks {
		chunk := raw[c*deviceIDChunkLen : (c+1)*deviceIDChunkLen]
		at := c * (deviceIDChunkLen + 1)
		copy(out[at:], chunk)
		out[at+deviceIDChunkLen] = luhn32(chunk)
	}
	return out
}

// String returns the canonical text form: 6 groups of 6 characters
// separated by '-'.
func (id DeviceID) String() string {
	c := id.compact()
	var b strings.Builder
	b.Grow(deviceIDTextLen + deviceIDTextLen/deviceIDGroupLen - 1)
	for i := 0; i < deviceIDTextLen; i += deviceIDGroupLen {
		if i > 0 {
			b.WriteByte('-')
		}
		b.Write(c[i : i+deviceIDGroupLen])
	}
	return b.String()
}

// Short returns the first group of the text form, enough to tell devices
// apart in logs.
func (id DeviceID) Short() string {
	c := id.compact()
	return string(c[:deviceIDGroupLen])
}

// IsZero reports whether id is the zero DeviceID.
func (id DeviceID) IsZero() bool { return id == DeviceID{} }

// LogValue logs the short form.
func (id DeviceID) LogValue() slog.Value { return slog.StringValue(id.Short()) }

// URI returns the URI that device certificates carry as their subject
// alternative name: "urn:palyra:device:" followed by the 36 characters of the
// text form without separators.
func (id DeviceID) URI() string {
	c := id.compact()
	return deviceURIPrefix + string(c[:])
}

func (id DeviceID) uri() *url.URL {
	c := id.compact()
	return &url.URL{Scheme: "urn", Opaque: strings.TrimPrefix(deviceURIPrefix, "urn:") + string(c[:])}
}

// MarshalText returns the String form, or no text for the zero DeviceID so
// that an unset field stays empty.
func (id DeviceID) MarshalText() ([]byte, error) {
	if id.IsZero() {
		return []byte{}, nil
	}
	return []byte(id.String()), nil
}

// UnmarshalText parses like [ParseDeviceID]; empty text gives the zero
// DeviceID.
func (id *DeviceID) UnmarshalText(b []byte) error {
	if len(b) == 0 {
		*id = DeviceID{}
		return nil
	}
	v, err := ParseDeviceID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseDeviceID parses a device ID as a person may type it: letters in any
// case, with or without '-' and spaces, and with the digits 0, 1 and 8 read as
// the letters O, I and B. The check characters catch typos. Errors wrap
// [ErrInvalidDeviceID] and say what is wrong.
func ParseDeviceID(s string) (DeviceID, error) {
	// One pass over the bytes with a table, decoding runes only past
	// ASCII: the store parses every ID it lists, and this was most of a
	// 10,000-node listing's time in Go code. A wrong length is reported
	// before a wrong character, as a person miscounting is the likelier
	// mistake.
	var v [deviceIDTextLen]byte // the characters' base32 values
	n := 0
	bad, badAt := rune(-1), 0
	for i := 0; i < len(s); {
		val := int8(deviceIDBad)
		if b := s[i]; b < utf8.RuneSelf {
			val = deviceIDASCII[b]
			i++
			if val == deviceIDSeparator {
				continue
			}
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			if unicode.IsSpace(r) {
				continue
			}
			if bad < 0 && n < deviceIDTextLen {
				bad, badAt = r, n
			}
		}
		if n < deviceIDTextLen {
			if val < 0 && bad < 0 {
				bad, badAt = rune(s[i-1]), n
			}
			v[n] = byte(val)
		}
		n++
	}
	if n != deviceIDTextLen {
		return DeviceID{}, fmt.Errorf("%w: a device ID has %d characters, got %d", ErrInvalidDeviceID, deviceIDTextLen, n)
	}
	if bad >= 0 {
		return DeviceID{}, fmt.Errorf("%w: %q in group %d is not a device ID character (A-Z, 2-7)",
			ErrInvalidDeviceID, bad, badAt/deviceIDGroupLen+1)
	}

	var id DeviceID
	for k := range deviceIDChunks {
		at := k * (deviceIDChunkLen + 1)
		chunk := v[at : at+deviceIDChunkLen]
		if luhnValue(chunk) != v[at+deviceIDChunkLen] {
			first, last := at/deviceIDGroupLen+1, (at+deviceIDChunkLen)/deviceIDGroupLen+1
			return DeviceID{}, fmt.Errorf("%w: check character mismatch: the device ID has a typo in groups %d-%d",
				ErrInvalidDeviceID, first, last)
		}
		// 8 characters of 5 bits are 5 bytes, most significant first
		// (RFC 4648).
		var bits uint64
		for _, x := range chunk {
			bits = bits<<5 | uint64(x)
		}
		for j := range 5 {
			id[k*5+j] = byte(bits >> (8 * (4 - j)))
		}
	}
	return id, nil
}

const (
	deviceIDBad       = -1
	deviceIDSeparator = -2
)

// deviceIDASCII maps an ASCII byte to the base32 value it is read as
// (letters in either case; 0, 1 and 8 as O, I and B), deviceIDSeparator
// for '-' and white space, and deviceIDBad for the rest.
var deviceIDASCII = func() (t [utf8.RuneSelf]int8) {
	for i := range t {
		t[i] = deviceIDBad
	}
	for i := range len(base32Alphabet) {
		c := base32Alphabet[i]
		t[c] = int8(i)
		if 'A' <= c && c <= 'Z' {
			t[c+'a'-'A'] = int8(i)
		}
	}
	t['0'], t['1'], t['8'] = t['O'], t['I'], t['B']
	for _, c := range "- \t\n\v\f\r" {
		t[c] = deviceIDSeparator
	}
	return t
}()

// luhn32 returns the check character for s, whose bytes must all be in
// base32Alphabet. It is the Luhn mod N algorithm as syncthing applies it:
// the factor alternates 1, 2, 1, … starting from the first character, and a
// doubled value folds back into the alphabet as quotient plus remainder.
func luhn32(s []byte) byte {
	var chunk [deviceIDChunkLen]byte
	v := chunk[:0]
	for _, ch := range s {
		v = append(v, byte(base32Values[ch]))
	}
	return base32Alphabet[luhnValue(v)]
}

// luhnValue is luhn32 on the characters' base32 values, giving the check
// character's value.
func luhnValue(v []byte) byte {
	const n = len(base32Alphabet)
	factor, sum := 1, 0
	for _, x := range v {
		addend := factor * int(x)
		factor = 3 - factor
		sum += addend/n + addend%n
	}
	return byte((n - sum%n) % n)
}
