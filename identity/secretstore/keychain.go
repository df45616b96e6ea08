package secretstore

import (
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"time"

	"github.com/zalando/go-keyring"
)

// DefaultKeychainTimeout bounds each keychain call when KeychainOptions leaves
// Timeout zero. A healthy keychain answers in milliseconds; five seconds
// leaves room for a slow first D-Bus connection without leaving a person
// staring at a silent command.
const DefaultKeychainTimeout = 5 * time.Second

// keychainHint ends every ErrUnavailable message: it names the two ways out.
const keychainHint = "is the OS keychain running and unlocked? on a headless machine use --secret-store file"

// KeychainOptions configures NewKeychain.
type KeychainOptions struct {
	// Profile separates gateway profiles: items live under the keychain
	// service "palyra/<Profile>". It must pass ValidateName.
	Profile string
	// Timeout bounds every keychain call; zero means DefaultKeychainTimeout.
	Timeout time.Duration
}

// Keychain stores items in the OS keychain under service "palyra/<profile>"
// and account <name>, so several gateway profiles can coexist. Values are
// base64-encoded because go-keyring stores strings (and Secret Service items
// it writes are labelled text/plain).
//
// Every call runs under the timeout: go-keyring and godbus can block for
// ever, on a locked collection waiting for a password prompt nobody sees or
// on D-Bus autolaunch. A call that times out returns ErrUnavailable, but the
// keychain may still complete it later (say once a person unlocks it), so a
// timed-out Set or Delete may or may not have taken effect.
type Keychain struct {
	service string
	timeout time.Duration
	backend keyringBackend

	// slot holds one token while a backend call runs, including a call the
	// caller stopped waiting for. Calls therefore reach the keychain one at
	// a time and in order, and a keychain that never answers strands at most
	// one goroutine per Keychain rather than one per call.
	slot chan struct{}
}

// keyringBackend is the part of go-keyring the Keychain uses; tests replace
// it to simulate a keychain that hangs or fails.
type keyringBackend interface {
	Get(service, user string) (string, error)
	Set(service, user, password string) error
	Delete(service, user string) error
}

// goKeyring calls go-keyring's package functions, so keyring.MockInit also
// takes effect here.
type goKeyring struct{}

func (goKeyring) Get(service, user string) (string, error) {
	return keyring.Get(service, user)
}

func (goKeyring) Set(service, user, password string) error {
	return keyring.Set(service, user, password)
}

func (goKeyring) Delete(service, user string) error {
	return keyring.Delete(service, user)
}

// NewKeychain returns a Keychain for opts.Profile. It does not contact the
// keychain, so an unreachable keychain shows up at the first call.
func NewKeychain(opts KeychainOptions) (*Keychain, error) {
	return newKeychain(opts, goKeyring{})
}

func newKeychain(opts KeychainOptions, backend keyringBackend) (*Keychain, error) {
	if err := ValidateName(opts.Profile); err != nil {
		return nil, fmt.Errorf("opening OS keychain: profile: %w", err)
	}
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultKeychainTimeout
	case timeout < 0:
		return nil, fmt.Errorf("opening OS keychain: negative timeout %s", timeout)
	}
	return &Keychain{
		service: "palyra/" + opts.Profile,
		timeout: timeout,
		backend: backend,
		slot:    make(chan struct{}, 1),
	}, nil
}

// Kind reports KindKeychain.
func (k *Keychain) Kind() string { return KindKeychain }

// Get returns the value stored under name.
func (k *Keychain) Get(name string) ([]byte, error) {
	what := fmt.Sprintf("reading %q from the OS keychain (service %q)", name, k.service)
	if err := ValidateName(name); err != nil {
		return nil, fmt.Errorf("reading from the OS keychain: %w", err)
	}
	var encoded string
	err := k.call(what, func(b keyringBackend) (err error) {
		encoded, err = b.Get(k.service, name)
		return err
	})
	if err != nil {
		return nil, err
	}
	value, err := base64.StdEncoding.DecodeString(encoded)
	if err != nil {
		// The decoder's error gives an offset, never the bytes, so it
		// cannot leak the value.
		return nil, fmt.Errorf("%s: the item is not base64, so it was not written by this program: %v", what, err)
	}
	return value, nil
}

// Set stores value under name. The value must not exceed MaxValueSize.
func (k *Keychain) Set(name string, value []byte) error {
	what := fmt.Sprintf("storing %q in the OS keychain (service %q)", name, k.service)
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("storing in the OS keychain: %w", err)
	}
	if n := base64.StdEncoding.EncodedLen(len(value)); n > MaxItemSize {
		return fmt.Errorf("%s: %w: %d bytes take %d bytes base64-encoded, over the limit of %d (at most %d bytes before encoding)",
			what, ErrTooLarge, len(value), n, MaxItemSize, MaxValueSize)
	}
	encoded := base64.StdEncoding.EncodeToString(value)
	return k.call(what, func(b keyringBackend) error {
		return b.Set(k.service, name, encoded)
	})
}

// Delete removes the item stored under name; a missing item is not an error.
func (k *Keychain) Delete(name string) error {
	what := fmt.Sprintf("deleting %q from the OS keychain (service %q)", name, k.service)
	if err := ValidateName(name); err != nil {
		return fmt.Errorf("deleting from the OS keychain: %w", err)
	}
	err := k.call(what, func(b keyringBackend) error {
		return b.Delete(k.service, name)
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// call runs fn against the backend with the Keychain's deadline, covering both
// the wait for an earlier call and fn itself, and translates the result into
// this package's errors, each prefixed with what.
func (k *Keychain) call(what string, fn func(keyringBackend) error) error {
	timer := time.NewTimer(k.timeout)
	defer timer.Stop()

	select {
	case k.slot <- struct{}{}:
	case <-timer.C:
		return fmt.Errorf("%s: %w: an earlier request to the keychain has not returned after %s (%s)",
			what, ErrUnavailable, k.timeout, keychainHint)
	}

	// Buffered, so the goroutine can finish and free the slot even after
	// the caller stopped waiting.
	done := make(chan error, 1)
	go func() {
		defer func() { <-k.slot }()
		done <- callRecovered(k.backend, fn)
	}()

	select {
	case err := <-done:
		return translate(what, err)
	case <-timer.C:
		return fmt.Errorf("%s: %w: no answer within %s (%s)", what, ErrUnavailable, k.timeout, keychainHint)
	}
}

// callRecovered runs fn and turns a panic into an error: go-keyring's
// Secret Service code makes unchecked type assertions on D-Bus replies, and
// a misbehaving keychain daemon must not crash the program.
func callRecovered(b keyringBackend, fn func(keyringBackend) error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			// A runtime error names types and indexes, never values;
			// any other panic value might carry data, so it is left out.
			if re, ok := r.(runtime.Error); ok {
				err = fmt.Errorf("keychain library panicked: %v", re)
			} else {
				err = errors.New("keychain library panicked")
			}
		}
	}()
	return fn(b)
}

// translate maps go-keyring's errors onto this package's sentinels. Only the
// error's text is kept for anything unexpected: errors from the keychain
// describe the failure (D-Bus, exit status), never the value.
func translate(what string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, keyring.ErrNotFound):
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	case errors.Is(err, keyring.ErrSetDataTooBig):
		return fmt.Errorf("%s: %w: the keychain refused the item's size", what, ErrTooLarge)
	default:
		return fmt.Errorf("%s: %w: %v (%s)", what, ErrUnavailable, err, keychainHint)
	}
}
