//go:build windows

package secretstore

import (
	"bytes"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/danieljoos/wincred"
)

// TestKeychainCredentialManager goes through Windows Credential Manager,
// go-keyring's backend there: an item of the largest size the design
// allows is stored, read back and deleted, and Credential Manager itself
// (wincred, not go-keyring) shows it as 2,500 bytes while it exists. make
// test-windows runs it under Wine.
func TestKeychainCredentialManager(t *testing.T) {
	profile := fmt.Sprintf("test-%d", time.Now().UnixNano())
	k, err := NewKeychain(KeychainOptions{Profile: profile})
	if err != nil {
		t.Fatal(err)
	}
	target := func(name string) string { return "palyra/" + profile + ":" + name }
	stored := func(name string) (*wincred.GenericCredential, error) {
		return wincred.GetGenericCredential(target(name))
	}
	t.Cleanup(func() {
		for _, name := range []string{"device-key", "too-big"} {
			if c, err := stored(name); err == nil {
				_ = c.Delete()
			}
		}
	})

	value := make([]byte, MaxValueSize)
	rand.Read(value)
	if err := k.Set("device-key", value); err != nil {
		t.Fatalf("storing %d bytes: %v", len(value), err)
	}
	got, err := k.Get("device-key")
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("reading it back: %d bytes, equal %v, %v", len(got), bytes.Equal(got, value), err)
	}
	c, err := stored("device-key")
	if err != nil {
		t.Fatalf("the item is not in Credential Manager as %q: %v", target("device-key"), err)
	}
	if len(c.CredentialBlob) != MaxItemSize {
		t.Fatalf("Credential Manager holds %d bytes, want %d", len(c.CredentialBlob), MaxItemSize)
	}

	// One byte more is refused before anything is written, saying why.
	err = k.Set("too-big", make([]byte, MaxValueSize+1))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "over the limit of 2500") {
		t.Fatalf("an item over the limit: %v", err)
	}
	if _, err := stored("too-big"); !errors.Is(err, syscall.ERROR_NOT_FOUND) {
		t.Fatalf("the refused item is in Credential Manager: %v", err)
	}

	if err := k.Delete("device-key"); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Get("device-key"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reading a deleted item: %v", err)
	}
	if _, err := stored("device-key"); !errors.Is(err, syscall.ERROR_NOT_FOUND) {
		t.Fatalf("the deleted item is still in Credential Manager: %v", err)
	}
}
