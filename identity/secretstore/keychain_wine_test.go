//go:build wine

package secretstore

import (
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testwine"
)

// TestKeychainUnderWine runs this package's Credential Manager test, built
// for Windows, under Wine.
func TestKeychainUnderWine(t *testing.T) {
	exe := testwine.BuildTest(t, "github.com/palyra/palyra-go/identity/secretstore")
	w := testwine.New(t)
	out := w.RunTests(t, exe, "^TestKeychainCredentialManager$", 2*time.Minute)
	t.Log(out)
}
