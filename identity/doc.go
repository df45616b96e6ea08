// Package identity owns who is who in Palyra: device keys and the device IDs
// derived from them, the gateway's certificate authority, issuance of device
// and server certificates, their verification, and certificate fingerprints.
//
// A device generates its own Ed25519 key; its [DeviceID] is derived from the
// public key alone, so it survives certificate renewal. The gateway's [CA]
// issues short-lived device certificates from certificate signing requests,
// taking the identity only from the request's key, and a server certificate
// for the gateway's own listen addresses, and the peer certificate a gateway
// presents to the other gateways of its database ([VerifyGatewayCertificate]). [VerifyDeviceCertificate] is the one
// place that turns a presented client certificate into a DeviceID.
//
// Time is always an argument; nothing here reads the clock. The package does
// no networking (it uses package net only for the net.IP type of
// crypto/x509), holds no GUI code, and keeps no state beyond the CA files
// that [LoadOrCreateCA] reads and writes. It must not import transports
// (quic-go, gRPC), the gateway, the node or Fyne. The secret store, the
// pairing protocol and CPace live in the sub-packages secretstore, pairing
// and cpace.
package identity
