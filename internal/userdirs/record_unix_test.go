//go:build unix

package userdirs

import (
	"net"
	"path/filepath"
	"testing"
)

// A socket served under one runtime directory is found from another,
// through the record beside the state; a computed path that is there
// wins, and without either the computed path is kept.
func TestFindSocket(t *testing.T) {
	state, runA, runB := t.TempDir(), t.TempDir(), t.TempDir()
	served := filepath.Join(runA, "node.sock")
	ln, err := net.Listen("unix", served)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	other := filepath.Join(runB, "node.sock")
	if got := FindSocket(other, state, NodeSocketRecord); got != other {
		t.Errorf("without a record: %s, want %s", got, other)
	}
	if err := RecordSocket(state, NodeSocketRecord, served); err != nil {
		t.Fatal(err)
	}
	if got := FindSocket(other, state, NodeSocketRecord); got != served {
		t.Errorf("with a record: %s, want %s", got, served)
	}
	if got := FindSocket(served, state, NodeSocketRecord); got != served {
		t.Errorf("computed and served: %s, want %s", got, served)
	}
	ln.Close()
	if got := FindSocket(other, state, NodeSocketRecord); got != other {
		t.Errorf("the recorded socket is gone: %s, want %s", got, other)
	}
}
