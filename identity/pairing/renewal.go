package pairing

import (
	"crypto/sha256"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/cpace"
)

// RenewalContext is the Ed25519ctx context of the signature a device makes
// to renew a certificate that ran out; the context keeps the signature from
// being valid for anything else the device key signs.
const RenewalContext = "palyra renew-expired v1"

// RenewalMessage is what the device signs: the gateway's fresh challenge,
// the gateway's TLS certificate as the device saw it, and the certificate
// request, so the signature is good for this exchange only.
func RenewalMessage(challenge []byte, tlsCert identity.Fingerprint, csrDER []byte) []byte {
	sum := sha256.Sum256(csrDER)
	return cpace.LVCat([]byte(RenewalContext), challenge, tlsCert[:], sum[:])
}

// ResumeContext is the Ed25519ctx context of the signature a device makes
// to collect the answer to its own pairing request on a new connection.
const ResumeContext = "palyra pairing-resume v1"

// ResumeMessage is what the device signs to resume request requestID: the
// gateway's fresh challenge, the gateway's TLS certificate as the device
// saw it, and the request ID, so the signature is good for this exchange
// only.
func ResumeMessage(challenge []byte, tlsCert identity.Fingerprint, requestID string) []byte {
	return cpace.LVCat([]byte(ResumeContext), challenge, tlsCert[:], []byte(requestID))
}
