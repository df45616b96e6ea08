package secretstore

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/zalando/go-keyring"
)

// These tests cover the Keychain's own logic: encoding, limits, error mapping,
// deadlines. The real Secret Service is exercised in
// keychain_secretservice_test.go.

// fakeBackend is an in-memory keyringBackend whose calls can be made to fail,
// panic, or wait until released.
type fakeBackend struct {
	// mu guards items and calls.
	mu    sync.Mutex
	items map[string]string // service + "\x00" + user -> stored string
	calls []string          // operations in the order they ran

	err     error         // returned by every call when set
	panicOn any           // panicked with by every call when set
	release chan struct{} // when set, calls wait until it is closed
}

func (f *fakeBackend) enter(op string) error {
	if f.release != nil {
		<-f.release
	}
	f.mu.Lock()
	f.calls = append(f.calls, op)
	f.mu.Unlock()
	if f.panicOn != nil {
		panic(f.panicOn)
	}
	return f.err
}

func (f *fakeBackend) Get(service, user string) (string, error) {
	if err := f.enter("get " + user); err != nil {
		return "", err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.items[service+"\x00"+user]
	if !ok {
		return "", keyring.ErrNotFound
	}
	return v, nil
}

func (f *fakeBackend) Set(service, user, password string) error {
	if err := f.enter("set " + user); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.items == nil {
		f.items = make(map[string]string)
	}
	f.items[service+"\x00"+user] = password
	return nil
}

func (f *fakeBackend) Delete(service, user string) error {
	if err := f.enter("delete " + user); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.items[service+"\x00"+user]; !ok {
		return keyring.ErrNotFound
	}
	delete(f.items, service+"\x00"+user)
	return nil
}

func TestNewKeychainOptions(t *testing.T) {
	t.Parallel()
	for _, profile := range []string{"", "Default", "a/b", "..", "x y"} {
		if _, err := NewKeychain(KeychainOptions{Profile: profile}); !errors.Is(err, ErrInvalidName) {
			t.Errorf("NewKeychain(profile %q): %v, want ErrInvalidName", profile, err)
		}
	}
	if _, err := NewKeychain(KeychainOptions{Profile: "default", Timeout: -time.Second}); err == nil {
		t.Errorf("NewKeychain with a negative timeout succeeded, want an error")
	}
	k, err := NewKeychain(KeychainOptions{Profile: "default"})
	if err != nil {
		t.Fatal(err)
	}
	if k.timeout != DefaultKeychainTimeout || k.service != "palyra/default" || k.Kind() != KindKeychain {
		t.Errorf("NewKeychain = timeout %s, service %q, kind %q; want %s, palyra/default, keychain",
			k.timeout, k.service, k.Kind(), DefaultKeychainTimeout)
	}
}

func TestKeychainRejectsBadNamesWithoutCalling(t *testing.T) {
	t.Parallel()
	fb := &fakeBackend{}
	k, err := newKeychain(KeychainOptions{Profile: "default"}, fb)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", "../x", "A", ".k"} {
		if _, err := k.Get(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Get(%q): %v, want ErrInvalidName", name, err)
		}
		if err := k.Set(name, []byte("v")); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Set(%q): %v, want ErrInvalidName", name, err)
		}
		if err := k.Delete(name); !errors.Is(err, ErrInvalidName) {
			t.Errorf("Delete(%q): %v, want ErrInvalidName", name, err)
		}
	}
	if len(fb.calls) != 0 {
		t.Errorf("keychain was called for invalid names: %q", fb.calls)
	}
}

func TestKeychainSizeLimitBeforeCalling(t *testing.T) {
	t.Parallel()
	fb := &fakeBackend{}
	k, err := newKeychain(KeychainOptions{Profile: "default"}, fb)
	if err != nil {
		t.Fatal(err)
	}
	err = k.Set("big", make([]byte, MaxValueSize+1))
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("Set of MaxValueSize+1 bytes: %v, want ErrTooLarge", err)
	}
	if !strings.Contains(err.Error(), "2504 bytes base64-encoded") {
		t.Errorf("error %q does not give the encoded size", err)
	}
	if len(fb.calls) != 0 {
		t.Errorf("keychain was called for an oversized item: %q", fb.calls)
	}
	if err := k.Set("big", make([]byte, MaxValueSize)); err != nil {
		t.Fatalf("Set of MaxValueSize bytes: %v", err)
	}
	if got := len(fb.items["palyra/default\x00big"]); got != MaxItemSize {
		t.Errorf("stored item is %d bytes, want exactly MaxItemSize (%d)", got, MaxItemSize)
	}
}

func TestKeychainNotBase64(t *testing.T) {
	t.Parallel()
	fb := &fakeBackend{items: map[string]string{"palyra/default\x00device-key": "not base64!"}}
	k, err := newKeychain(KeychainOptions{Profile: "default"}, fb)
	if err != nil {
		t.Fatal(err)
	}
	_, err = k.Get("device-key")
	if err == nil || !strings.Contains(err.Error(), "not base64") {
		t.Fatalf("Get of a foreign item: %v, want a not base64 error", err)
	}
	if strings.Contains(err.Error(), "not base64!") {
		t.Errorf("error %q contains the stored value", err)
	}
}

// TestKeychainTimeout: a keychain that never answers (a locked collection
// waiting for a prompt nobody sees) costs the caller exactly the timeout,
// later calls do not pile up behind it, and once it answers the store works
// again.
func TestKeychainTimeout(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		fb := &fakeBackend{release: make(chan struct{})}
		k, err := newKeychain(KeychainOptions{Profile: "default", Timeout: 2 * time.Second}, fb)
		if err != nil {
			t.Fatal(err)
		}

		start := time.Now()
		_, err = k.Get("device-key")
		if !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Get from a hung keychain: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Get returned after %s, want the 2s timeout", d)
		}
		for _, want := range []string{`reading "device-key" from the OS keychain`, "no answer within 2s", "unlocked", "--secret-store file"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not contain %q", err, want)
			}
		}

		// The first call still holds the keychain; the next one waits
		// for it only until its own deadline.
		start = time.Now()
		err = k.Set("device-key", []byte("v"))
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "an earlier request") {
			t.Fatalf("Set behind a hung call: %v, want ErrUnavailable about an earlier request", err)
		}
		if d := time.Since(start); d != 2*time.Second {
			t.Errorf("Set returned after %s, want the 2s timeout", d)
		}

		// The keychain answers at last (someone unlocked it): the stranded
		// call finishes, and new calls go through.
		close(fb.release)
		if err := k.Set("device-key", []byte("v")); err != nil {
			t.Fatalf("Set after the keychain recovered: %v", err)
		}
		got, err := k.Get("device-key")
		if err != nil || string(got) != "v" {
			t.Fatalf("Get after the keychain recovered = %q, %v; want v", got, err)
		}
		fb.mu.Lock()
		defer fb.mu.Unlock()
		want := []string{"get device-key", "set device-key", "get device-key"}
		if strings.Join(fb.calls, ",") != strings.Join(want, ",") {
			t.Errorf("keychain calls %q, want %q (the timed-out Set never ran; calls in order)", fb.calls, want)
		}
	})
}

func TestKeychainPanicBecomesError(t *testing.T) {
	t.Parallel()
	var runtimeErr any
	func() {
		defer func() { runtimeErr = recover() }()
		var v any = "s3cr3t"
		_ = v.(bool)
	}()
	for _, p := range []any{runtimeErr, "panic carrying s3cr3t"} {
		fb := &fakeBackend{panicOn: p}
		k, err := newKeychain(KeychainOptions{Profile: "default"}, fb)
		if err != nil {
			t.Fatal(err)
		}
		_, err = k.Get("device-key")
		if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "panicked") {
			t.Errorf("Get with a panicking keychain (%v): %v, want ErrUnavailable saying it panicked", p, err)
		}
		if err != nil && strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error %q carries data from the panic value", err)
		}
		// The panic freed the keychain for the next call.
		fb.panicOn = nil
		if err := k.Set("device-key", []byte("v")); err != nil {
			t.Errorf("Set after a panic: %v", err)
		}
	}
}

// TestKeychainThroughGoKeyring runs the Keychain over go-keyring's own mock
// provider, checking what reaches go-keyring: base64 text under service
// "palyra/<profile>" and the item's name.
func TestKeychainThroughGoKeyring(t *testing.T) {
	// Not parallel: keyring.MockInit replaces go-keyring's process-wide
	// provider. Nothing else in this process uses the real one; the real
	// Secret Service tests run in subprocesses.
	keyring.MockInit()

	a, err := NewKeychain(KeychainOptions{Profile: "gw-a"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewKeychain(KeychainOptions{Profile: "gw-b"})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Set("device-key", allBytes()); err != nil {
		t.Fatal(err)
	}
	if err := b.Set("device-key", []byte("other")); err != nil {
		t.Fatal(err)
	}
	raw, err := keyring.Get("palyra/gw-a", "device-key")
	if err != nil || raw != base64.StdEncoding.EncodeToString(allBytes()) {
		t.Errorf("go-keyring holds %q, %v; want the base64 of the value", raw, err)
	}
	if got, err := a.Get("device-key"); err != nil || !bytes.Equal(got, allBytes()) {
		t.Errorf("profile gw-a Get = %x, %v", got, err)
	}
	if got, err := b.Get("device-key"); err != nil || string(got) != "other" {
		t.Errorf("profile gw-b Get = %q, %v; want other", got, err)
	}
	if _, err := a.Get("device-cert"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing item: %v, want ErrNotFound", err)
	}
	if err := a.Delete("device-key"); err != nil {
		t.Fatal(err)
	}
	if err := a.Delete("device-key"); err != nil {
		t.Errorf("Delete of a missing item: %v, want nil", err)
	}
	if got, err := b.Get("device-key"); err != nil || string(got) != "other" {
		t.Errorf("deleting from gw-a touched gw-b: %q, %v", got, err)
	}
}

func TestKeychainMapsGoKeyringErrors(t *testing.T) {
	// Not parallel: see TestKeychainThroughGoKeyring.
	t.Cleanup(keyring.MockInit)
	tests := []struct {
		name    string
		err     error
		want    error
		wantMsg string
	}{
		{"too big", keyring.ErrSetDataTooBig, ErrTooLarge, "refused the item's size"},
		{"not found", keyring.ErrNotFound, ErrNotFound, "secret not found"},
		{"dbus", errors.New("dbus: connection closed by user"), ErrUnavailable, "OS keychain unavailable: dbus: connection closed by user (is the OS keychain running and unlocked?"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keyring.MockInitWithError(tt.err)
			k, err := NewKeychain(KeychainOptions{Profile: "default"})
			if err != nil {
				t.Fatal(err)
			}
			err = k.Set("device-key", []byte("s3cr3t"))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Set: %v, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("error %q does not contain %q", err, tt.wantMsg)
			}
			for _, leak := range []string{"s3cr3t", base64.StdEncoding.EncodeToString([]byte("s3cr3t"))} {
				if strings.Contains(err.Error(), leak) {
					t.Errorf("error %q contains the value", err)
				}
			}
		})
	}
}
