package userdirs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/palyra/palyra-go/internal/testwine"
)

// On Windows the endpoint is a file (internal/localsock): FindSocket takes
// a computed one that is there, else the recorded one, else the computed.
func TestFindEndpointFile(t *testing.T) {
	state, runA, runB := testwine.TempDir(t), testwine.TempDir(t), testwine.TempDir(t)
	served := filepath.Join(runA, "node.endpoint")
	if err := os.WriteFile(served, []byte("an endpoint\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(runB, "node.endpoint")
	if got := FindSocket(other, state, NodeSocketRecord); got != other {
		t.Errorf("without a record: %s, want %s", got, other)
	}
	if err := RecordSocket(state, NodeSocketRecord, served); err != nil {
		t.Fatal(err)
	}
	if got := FindSocket(other, state, NodeSocketRecord); got != served {
		t.Errorf("with a record: %s, want %s", got, served)
	}
	if err := os.Remove(served); err != nil {
		t.Fatal(err)
	}
	if got := FindSocket(other, state, NodeSocketRecord); got != other {
		t.Errorf("the recorded endpoint is gone: %s, want %s", got, other)
	}
}
