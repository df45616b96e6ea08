module github.com/palyra/palyra-go

go 1.26

require (
	github.com/godbus/dbus/v5 v5.2.2
	github.com/gtank/ristretto255 v0.1.2
	github.com/makiuchi-d/gozxing v0.1.1
	github.com/skip2/go-qrcode v0.0.0-20200617195104-da1b6568686e
	github.com/zalando/go-keyring v0.2.8
	github.com/zmap/zcrypto v0.0.0-20260906180147-3ed30b1e9340
	github.com/zmap/zlint/v3 v3.7.3
	google.golang.org/protobuf v1.36.12
)

require (
	github.com/danieljoos/wincred v1.2.3 // indirect
	github.com/pelletier/go-toml v1.9.5 // indirect
	github.com/weppos/publicsuffix-go v0.50.4-0.20260821095816-b0fdb5c2d345 // indirect
	golang.org/x/crypto v0.55.0 // indirect
	golang.org/x/net v0.58.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.41.0 // indirect
	golang.org/x/xerrors v0.0.0-20200804184101-5ec99f83aff1 // indirect
)

replace github.com/weppos/publicsuffix-go => github.com/weppos/publicsuffix-go v0.50.3
