// Package zlinttest lints the certificates package identity issues with
// zlint. It is a module of its own because zlint needs a replace directive
// (a publicsuffix-go version the module proxy serves), and a replace in the
// main go.mod would make `go install github.com/palyra/palyra-go/cmd/palyra@VERSION`
// fail. `make test` runs it.
package zlinttest
