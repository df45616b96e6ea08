// Package secretstore keeps a device's secrets — its private key PEM and its
// certificates — as small named items, either in the OS keychain (macOS
// Keychain, Windows Credential Manager, Secret Service on Linux, through
// go-keyring) or, only when the user chose it explicitly, in 0600 files.
//
// There is no silent fallback from the keychain to files: a machine without a
// reachable keychain gets ErrUnavailable with a message that says what to do,
// and the caller decides whether to refuse to start or to use the file store.
//
// The package owns the storage of secret bytes only. It does not generate,
// parse or interpret keys and certificates, does no networking beyond what
// the OS keychain itself needs (the D-Bus session bus on Linux), and uses no
// cgo. It must not import the node, gateway or app packages.
package secretstore

import (
	"errors"
	"fmt"
	"strings"
)

// MaxItemSize is the largest item, in bytes as stored (after any encoding),
// that a Store accepts. It is Windows Credential Manager's limit (2,560 bytes)
// rounded down, so an item that fits here fits in every OS keychain.
const MaxItemSize = 2500

// MaxValueSize is the largest value Set accepts in every Store. The keychain
// stores values base64-encoded, and MaxValueSize bytes encode to exactly
// MaxItemSize. The file store keeps the same limit, so a secret that fits one
// store always fits the other and a device can move between them.
const MaxValueSize = MaxItemSize / 4 * 3

// The kinds of store Open accepts, as a user types them (--secret-store).
const (
	KindKeychain = "keychain"
	KindFile     = "file"
)

var (
	// ErrNotFound reports that no item has the requested name.
	ErrNotFound = errors.New("secret not found")
	// ErrTooLarge reports a value over MaxValueSize, that is an item over
	// MaxItemSize as stored. Nothing was written.
	ErrTooLarge = errors.New("secret too large")
	// ErrUnavailable reports that the OS keychain could not be used: it is
	// absent, locked, has no session bus, or did not answer in time.
	ErrUnavailable = errors.New("OS keychain unavailable")
	// ErrInvalidName reports a name or profile outside the allowed alphabet.
	ErrInvalidName = errors.New("invalid name")
	// ErrInsecurePermissions reports a secret file or directory that other
	// users may read or write. The file store refuses to use it, because the
	// secret may have leaked and must not be trusted silently.
	ErrInsecurePermissions = errors.New("secret file or directory accessible by other users")
)

// Store keeps small secret items by name. Implementations are safe for
// concurrent use.
type Store interface {
	// Get returns the value stored under name, or an error wrapping
	// ErrNotFound when there is none.
	Get(name string) ([]byte, error)
	// Set stores value under name, replacing any previous value. Values
	// over MaxValueSize fail with ErrTooLarge.
	Set(name string, value []byte) error
	// Delete removes the item. Deleting a missing item is not an error.
	Delete(name string) error
	// Kind reports KindKeychain or KindFile.
	Kind() string
}

// Open returns the store of the given kind: KindKeychain for the OS keychain,
// under profile, or KindFile for files in fileDir. The profile is checked for
// both kinds so a bad one fails the same way whichever store is chosen; the
// file store keeps profiles apart only by directory, so callers give each
// profile its own fileDir.
func Open(kind, profile, fileDir string) (Store, error) {
	switch kind {
	case KindKeychain:
		k, err := NewKeychain(KeychainOptions{Profile: profile})
		if err != nil {
			return nil, err
		}
		return k, nil
	case KindFile:
		if err := ValidateName(profile); err != nil {
			return nil, fmt.Errorf("opening file secret store: profile: %w", err)
		}
		f, err := NewFile(fileDir)
		if err != nil {
			return nil, err
		}
		return f, nil
	default:
		return nil, fmt.Errorf("unknown secret store %.40q: choose %q (the OS keychain) or %q (0600 files, for machines without a keychain)",
			kind, KindKeychain, KindFile)
	}
}

// maxNameLen bounds names and profiles. Keychain services and accounts, and
// file names on every OS, are comfortably longer.
const maxNameLen = 64

// ValidateName reports whether s may be used as an item name or a profile:
// 1 to 64 characters of a-z, 0-9, '.', '_' and '-', starting with a letter or
// digit. Names become file names and keychain attributes, so besides path
// separators and "..", names Windows would alias are refused too (a trailing
// dot, device names such as "con" or "nul.pem"), keeping a name valid in every
// store on every OS.
func ValidateName(s string) error {
	reason := nameProblem(s)
	if reason == "" {
		return nil
	}
	return fmt.Errorf("%w %.70q: %s (use 1 to %d characters from a-z, 0-9, '.', '_' and '-', starting with a letter or digit)",
		ErrInvalidName, s, reason, maxNameLen)
}

// nameProblem says what is wrong with s, or "" when nothing is.
func nameProblem(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > maxNameLen:
		return fmt.Sprintf("%d bytes long", len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', '0' <= c && c <= '9':
		case c == '.' || c == '_' || c == '-':
			if i == 0 {
				return fmt.Sprintf("starts with %q", c)
			}
		case c == '/' || c == '\\':
			return "contains a path separator"
		default:
			return fmt.Sprintf("contains %q", c)
		}
	}
	switch {
	case strings.Contains(s, ".."):
		return `contains ".."`
	case strings.HasSuffix(s, "."):
		return "ends with a dot"
	}
	stem, _, _ := strings.Cut(s, ".")
	if windowsDeviceName(stem) {
		return fmt.Sprintf("%q is a device name on Windows", stem)
	}
	return ""
}

// windowsDeviceName reports names Windows maps to devices in any directory,
// with or without an extension.
func windowsDeviceName(stem string) bool {
	switch stem {
	case "con", "prn", "aux", "nul":
		return true
	}
	if len(stem) == 4 && (strings.HasPrefix(stem, "com") || strings.HasPrefix(stem, "lpt")) {
		return '0' <= stem[3] && stem[3] <= '9'
	}
	return false
}
