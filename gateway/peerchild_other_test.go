//go:build !unix

package gateway_test

// peerChildMain: the tests that run a gateway in a child process, to kill
// it, are Unix ones.
func peerChildMain() {}
