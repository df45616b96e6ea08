package identity

import "errors"

// Sentinel errors. Functions wrap them with what was being done and why, so
// callers test with [errors.Is] and show the message to a person as it is.
var (
	// ErrInvalidDeviceID: a device ID's text does not parse (length,
	// character or check character).
	ErrInvalidDeviceID = errors.New("invalid device ID")

	// ErrInvalidKey: a key is malformed, of the wrong type, or unusable.
	ErrInvalidKey = errors.New("invalid key")

	// ErrInvalidCSR: a certificate signing request is malformed, its
	// signature does not verify, or its key is not an Ed25519 device key.
	ErrInvalidCSR = errors.New("invalid certificate request")

	// ErrInvalidCA: CA files or certificates are malformed, do not belong
	// together, or do not describe a certificate authority.
	ErrInvalidCA = errors.New("invalid CA")

	// ErrUntrusted: a certificate is not signed by the expected CA or is not
	// a certificate at all.
	ErrUntrusted = errors.New("untrusted certificate")

	// ErrExpired: a certificate (or the CA) is outside its validity period
	// at the time given.
	ErrExpired = errors.New("certificate expired or not yet valid")

	// ErrNotDeviceCertificate: a certificate chains to the CA but is not a
	// device certificate (wrong usage, wrong key type, names that do not
	// match the key, or extra certificates in the chain).
	ErrNotDeviceCertificate = errors.New("not a device certificate")

	// ErrNotServerCertificate: a certificate chains to the CA but is not the
	// gateway's server certificate for the requested host.
	ErrNotServerCertificate = errors.New("not a gateway server certificate")

	// ErrNotGatewayCertificate: a certificate chains to the CA but is not
	// another gateway's peer certificate (a device's, say).
	ErrNotGatewayCertificate = errors.New("not a gateway peer certificate")

	// ErrRevoked is for callers that keep the revocation list (the gateway's
	// store): they wrap it when a verified device is revoked, so that every
	// layer can tell "revoked" from other failures. This package has no
	// revocation state and never returns it itself.
	ErrRevoked = errors.New("device revoked")

	// ErrInvalidFingerprint: a fingerprint's text does not parse.
	ErrInvalidFingerprint = errors.New("invalid fingerprint")
)
