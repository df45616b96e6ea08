// Package pairing is the transport-agnostic core of pairing a device with a
// gateway: the pairing code (a PIN a person types, or a link and QR code),
// and the exchange itself as two state machines, DeviceSession and
// GatewaySession, that turn a code into a device certificate.
//
// The exchange runs CPace (package cpace) with the code's secret as the
// password and the gateway's TLS certificate bound into the channel
// identifier, so the secret never crosses the wire and a man in the middle
// fails key confirmation. Under the confirmed key the device sends its public
// key and a certificate request, and the gateway answers, once an admin
// approved, with the device certificate, its CA certificate and its addresses.
//
// The package does no networking and keeps no state beyond one run; callers
// carry the messages (as bytes) and count failed attempts.
package pairing
