//go:build !unix

package unixsock

import "net"

// checkPrivate has nothing to check where directories carry no Unix mode;
// the socket's own ACL is the system's default for the user's files.
func checkPrivate(string) error { return nil }

func listenPrivate(path string) (net.Listener, error) { return net.Listen("unix", path) }
