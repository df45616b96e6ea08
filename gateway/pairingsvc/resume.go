package pairingsvc

import (
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

var (
	msgUnknown   = pairing.ErrRequestUnknown.Error()
	msgCollected = pairing.ErrRequestCollected.Error()
)

// requestIDLength is the length of a request ID: 16 bytes in hex.
const requestIDLength = 32

// parseResumeStart checks the first message of a Resume call: a request ID
// as the store makes them, and the device ID of the device resuming.
func parseResumeStart(m *pairingv1.ResumeStart) (string, identity.DeviceID, error) {
	if m == nil {
		return "", identity.DeviceID{}, errors.New("resuming must start with the request ID and the device ID")
	}
	if len(m.RequestId) != requestIDLength {
		return "", identity.DeviceID{}, fmt.Errorf("a request ID has %d characters, not %d", requestIDLength, len(m.RequestId))
	}
	for _, c := range m.RequestId {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return "", identity.DeviceID{}, errors.New("a request ID is lowercase hexadecimal")
		}
	}
	id, err := identity.ParseDeviceID(m.DeviceId)
	if err != nil {
		return "", identity.DeviceID{}, err
	}
	return m.RequestId, id, nil
}

// Resume lets the device that made a pairing request collect the answer on
// a new connection. It proves it is that device by signing a fresh
// challenge with the request's key; the grant is sealed under the key of
// the original exchange, which only that device holds.
func (s *Service) Resume(stream pairingv1.Pairing_ResumeServer) (err error) {
	ticket, err := s.admit(stream.Context())
	if err != nil {
		return err
	}
	defer ticket.Done()
	if s.cfg.Outcome != nil {
		defer func() {
			if status.Code(err) != codes.Canceled {
				s.cfg.Outcome(outcome(err))
			}
		}()
	}
	ctx := stream.Context()
	first, err := recvWithin(stream.Recv, s.cfg.StepTimeout)
	if err != nil {
		return err
	}
	requestID, deviceID, err := parseResumeStart(first.GetStart())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	rec, err := s.cfg.Store.GetRequest(ctx, requestID)
	// Another device's request reads as no request at all, so request IDs
	// cannot be probed.
	if errors.Is(err, store.ErrNotFound) || (err == nil && rec.DeviceID != deviceID) {
		return status.Error(codes.NotFound, msgUnknown)
	}
	if err != nil {
		s.cfg.Logger.Error("reading pairing request", "request_id", requestID, "err", err)
		return status.Error(codes.Internal, "the gateway could not look up the pairing request")
	}
	log := s.cfg.Logger.With("request_id", rec.ID, "device", rec.DeviceID)
	challenge := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, challenge); err != nil {
		return status.Error(codes.Internal, "the gateway could not make a challenge")
	}
	if err := stream.Send(&pairingv1.ResumeResponse{Message: &pairingv1.ResumeResponse_Challenge{Challenge: challenge}}); err != nil {
		return err
	}
	second, err := recvWithin(stream.Recv, s.cfg.StepTimeout)
	if err != nil {
		return err
	}
	msg := pairing.ResumeMessage(challenge, identity.CertificateFingerprint(s.cfg.ServerCertificate()), rec.ID)
	if err := identity.VerifyWithContext(rec.PublicKey, pairing.ResumeContext, msg, second.GetSignature()); err != nil {
		s.audit(ctx, store.AuditEvent{Kind: store.AuditPairingFailed, DeviceID: rec.DeviceID, RequestID: rec.ID,
			Detail: "resume signature did not verify"})
		return status.Error(codes.PermissionDenied, "the signature does not match the key of the device that made this request")
	}
	log.Info("pairing request resumed", "state", rec.State)
	// The device proved it made the request: not a guess, and its wait
	// for a decision is not work the cap on runs is about.
	ticket.Confirmed(s.cfg.Now())
	ticket.Done()
	switch rec.State {
	case store.RequestIssued:
		return status.Error(codes.FailedPrecondition, msgCollected)
	case store.RequestPending:
		rec, err = s.awaitDecision(ctx, rec, func(p *pairingv1.Pending) error {
			return stream.Send(&pairingv1.ResumeResponse{Message: &pairingv1.ResumeResponse_Pending{Pending: p}})
		})
	case store.RequestRejected:
		err = status.Error(codes.PermissionDenied, msgRejected)
	case store.RequestExpired:
		err = status.Error(codes.DeadlineExceeded, msgExpired)
	}
	if err != nil {
		return err
	}
	return s.deliver(ctx, rec, log, func(finish []byte) error {
		return stream.Send(&pairingv1.ResumeResponse{Message: &pairingv1.ResumeResponse_ServerFinish{ServerFinish: finish}})
	})
}
