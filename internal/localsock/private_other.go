//go:build !windows

package localsock

import "github.com/palyra/palyra-go/internal/atomicfile"

// writePrivate replaces path with data in a file of mode 0600.
func writePrivate(path string, data []byte) error {
	return atomicfile.Write(path, data, 0o600)
}
