module github.com/palyra/palyra-go/identity/zlinttest

go 1.26.0

require (
	github.com/palyra/palyra-go v0.0.0
	github.com/zmap/zcrypto v0.0.0-20260906180147-3ed30b1e9340
	github.com/zmap/zlint/v3 v3.7.3
)

require (
	github.com/pelletier/go-toml v1.9.5 // indirect
	github.com/weppos/publicsuffix-go v0.50.4-0.20260821095816-b0fdb5c2d345 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/text v0.42.0 // indirect
)

// The repository's own identity package, as it is in this checkout.
replace github.com/palyra/palyra-go => ../..

// zlint v3.7.3 requires a pseudo-version of publicsuffix-go that the module
// proxy does not serve.
replace github.com/weppos/publicsuffix-go => github.com/weppos/publicsuffix-go v0.50.3
