// Package version is Palyra's version, the one place it is written: the
// command line prints it, a node reports it to its gateway (and in
// system.info), and the gateway's metrics label their build with it.
// FyneApp.toml, which packages the desktop app, carries a copy that a test
// keeps equal.
package version

// Version is Palyra's version. A release build may set it with
// -ldflags "-X github.com/palyra/palyra-go/internal/version.Version=…".
var Version = "0.1.0"
