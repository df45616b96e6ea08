// Package pairingsvc serves the gateway's Pairing gRPC service: it carries
// the pairing exchange of identity/pairing over a stream, counts attempts and
// records requests in the store, waits for an admin's decision, and delivers
// the device certificate. It is served over server-auth TLS only: a device
// has no certificate before it pairs, so every call first passes the limits
// of package limit, and a selector with no open code is answered with a
// decoy exchange that looks like a wrong secret from the wire.
package pairingsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/palyra/palyra-go/gateway/auditlog"
	"github.com/palyra/palyra-go/gateway/pairingsvc/limit"
	"github.com/palyra/palyra-go/gateway/store"
	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	pairingv1 "github.com/palyra/palyra-go/proto/pairing/v1"
)

// Defaults for a pairing run.
const (
	// DefaultRequestTTL is how long a confirmed request waits for approval.
	DefaultRequestTTL = 10 * time.Minute
	// DefaultStepTimeout bounds each message the device owes during the
	// exchange itself, so a silent client cannot hold a run open.
	DefaultStepTimeout = 30 * time.Second
)

// What a device is told; identity/pairing owns the words so the device can
// map them back.
var (
	msgBadCode  = pairing.ErrWrongCode.Error()
	msgRejected = pairing.ErrRejected.Error()
	msgExpired  = pairing.ErrRequestExpired.Error()
	msgRevoked  = pairing.ErrDeviceRevoked.Error()
)

// Store is what the service needs of the gateway's store.
type Store interface {
	BeginAttempt(ctx context.Context, selector string, now time.Time) (store.Code, error)
	CompletePairing(ctx context.Context, codeID int64, r store.Request, now time.Time) (store.Request, error)
	GetRequest(ctx context.Context, id string) (store.Request, error)
	IssueCertificate(ctx context.Context, requestID string, cert store.Certificate, now time.Time) (store.Device, error)
	GetDevice(ctx context.Context, id identity.DeviceID) (store.Device, error)
	RecordCertificate(ctx context.Context, cert store.Certificate, now time.Time) error
	Audit(ctx context.Context, e store.AuditEvent) error
}

// Auditor counts the attempts the service refuses. Every one it audits is
// an attempt of a client not (yet) authenticated, which the client can
// repeat as fast as it likes: the gateway's (auditlog.Writer) counts them
// per kind, source and minute and never makes the exchange wait.
type Auditor interface {
	Count(e store.AuditEvent)
}

// Config wires the service to the rest of the gateway.
type Config struct {
	Store Store
	CA    *identity.CA
	// ServerCertificate returns the TLS leaf (DER) the pairing listener
	// presents; the exchange binds it into the channel identifier.
	ServerCertificate func() []byte
	// Addresses returns where nodes reach the gateway, HOST:PORT each.
	Addresses   func() []string
	GatewayName string
	Rand        io.Reader
	Now         func() time.Time
	Logger      *slog.Logger
	RequestTTL  time.Duration
	StepTimeout time.Duration
	// DeviceCertLifetime is passed to the CA; zero means its default.
	DeviceCertLifetime time.Duration
	// RenewalGrace bounds renewing after expiry; default DefaultRenewalGrace.
	RenewalGrace time.Duration
	// Outcome, if set, hears how each pairing attempt ended: one of the
	// Outcome* constants. Attempts the limits refused are not attempts;
	// Refused hears of them.
	Outcome func(outcome string)
	// Limits bound the calls any device may make (Pair, Resume,
	// RenewExpired) per source address and at once; zero fields take
	// package limit's defaults.
	Limits limit.Config
	// Refused, if set, hears of each call the limits refused.
	Refused func(reason limit.Reason)
	// Audit, if set, takes the service's audit events; otherwise each is
	// written to Store at once, and the exchange waits for it.
	Audit Auditor
}

// Outcomes of a pairing attempt, for metrics.
const (
	OutcomePaired    = "paired"     // certificate issued
	OutcomeWrongCode = "wrong_code" // no such open code, or the exchange failed
	OutcomeRejected  = "rejected"   // an admin rejected the request
	OutcomeExpired   = "expired"    // the pending request ran out
	OutcomeRefused   = "refused"    // anything else: malformed, revoked, device left
)

// outcome classifies the end of a Pair call.
func outcome(err error) string {
	if err == nil {
		return OutcomePaired
	}
	switch status.Convert(err).Message() {
	case msgBadCode:
		return OutcomeWrongCode
	case msgRejected:
		return OutcomeRejected
	case msgExpired:
		return OutcomeExpired
	}
	return OutcomeRefused
}

// Service implements pairingv1.PairingServer.
type Service struct {
	pairingv1.UnimplementedPairingServer
	cfg    Config
	limits *limit.Limiter

	mu sync.Mutex
	// waiters maps a pending request ID to the channels of the streams
	// waiting for its decision; guarded by mu.
	waiters map[string][]chan struct{}
}

// New checks the configuration and fills in defaults.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.CA == nil || cfg.ServerCertificate == nil || cfg.Addresses == nil || cfg.Rand == nil {
		return nil, errors.New("pairing service: store, CA, server certificate, addresses and random source are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RequestTTL <= 0 {
		cfg.RequestTTL = DefaultRequestTTL
	}
	if cfg.StepTimeout <= 0 {
		cfg.StepTimeout = DefaultStepTimeout
	}
	if cfg.RenewalGrace <= 0 {
		cfg.RenewalGrace = DefaultRenewalGrace
	}
	return &Service{cfg: cfg, limits: limit.New(cfg.Limits), waiters: map[string][]chan struct{}{}}, nil
}

// Decided wakes the streams waiting for a request; the admin service calls it
// after approving or rejecting.
func (s *Service) Decided(requestID string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.waiters[requestID] {
		close(ch)
	}
	delete(s.waiters, requestID)
}

// DevicesWaiting is the number of devices connected and waiting for a
// decision on their pairing request (one per open Pair or Resume stream).
func (s *Service) DevicesWaiting() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, list := range s.waiters {
		n += len(list)
	}
	return n
}

func (s *Service) wait(requestID string) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.waiters[requestID] = append(s.waiters[requestID], ch)
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		list := s.waiters[requestID]
		for i, c := range list {
			if c == ch {
				s.waiters[requestID] = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(s.waiters[requestID]) == 0 {
			delete(s.waiters, requestID)
		}
	}
}

// recv reads the next message with the step deadline.
func (s *Service) recv(stream pairingv1.Pairing_PairServer) (*pairingv1.PairRequest, error) {
	return recvWithin(stream.Recv, s.cfg.StepTimeout)
}

// recvWithin waits for one message at most d. Returning early ends the
// handler, which cancels the stream and so the pending Recv.
func recvWithin[M any](recv func() (M, error), d time.Duration) (M, error) {
	type result struct {
		m   M
		err error
	}
	ch := make(chan result, 1)
	go func() {
		m, err := recv()
		ch <- result{m, err}
	}()
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case r := <-ch:
		return r.m, r.err
	case <-timer.C:
		var zero M
		return zero, status.Error(codes.DeadlineExceeded, "the device took too long to answer")
	}
}

// Pair runs one pairing exchange.
func (s *Service) Pair(stream pairingv1.Pairing_PairServer) (err error) {
	ctx := stream.Context()
	ticket, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer ticket.Done()
	if s.cfg.Outcome != nil {
		defer func() { s.cfg.Outcome(outcome(err)) }()
	}
	log := s.cfg.Logger
	if p, ok := peer.FromContext(ctx); ok {
		log = log.With("remote", p.Addr.String())
	}

	first, err := s.recv(stream)
	if err != nil {
		return err
	}
	hello, err := pairing.ParseClientHello(first.GetClientHello())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	gwCfg := pairing.GatewayConfig{Rand: s.cfg.Rand, TLSCertificate: s.cfg.ServerCertificate()}
	code, err := s.cfg.Store.BeginAttempt(ctx, hello.Selector(), s.cfg.Now())
	// No open code: answer with a decoy exchange all the same, so that
	// the device learns only at key confirmation, as for a wrong secret,
	// and the wire (messages, errors, time taken) does not tell which
	// codes are open. BeginAttempt made one store write for it, as for an
	// open code, and a failed write answers Internal for both; the audit
	// is counted in the background for both.
	decoy := errors.Is(err, store.ErrCodeNotOpen)
	var gw *pairing.GatewaySession
	var reply []byte
	switch {
	case decoy:
		log = log.With("selector", hello.Selector(), "decoy", true)
		s.audit(ctx, store.AuditEvent{Kind: store.AuditPairingAttemptRefused,
			Detail: "no open code for selector " + hello.Selector() + "; answered with a decoy exchange"})
		gw, reply, err = pairing.RespondDecoy(gwCfg, hello)
	case err != nil:
		log.Error("starting pairing attempt", "err", err)
		return status.Error(codes.Internal, "the gateway could not start pairing")
	default:
		log = log.With("code", code.Selector)
		gw, reply, err = pairing.RespondGateway(gwCfg, hello,
			&pairing.Code{Selector: code.Selector, PINSecret: code.PINSecret, LinkSecret: code.LinkSecret})
	}
	// Audit details of a decoy run say so; the wire does not.
	detail := func(d string) string {
		if decoy {
			return "decoy exchange for selector " + hello.Selector() + ": " + d
		}
		return d
	}
	if err != nil {
		s.audit(ctx, store.AuditEvent{Kind: store.AuditPairingFailed, Detail: detail("malformed hello")})
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if err := stream.Send(&pairingv1.PairResponse{Message: &pairingv1.PairResponse_ServerHello{ServerHello: reply}}); err != nil {
		return err
	}
	second, err := s.recv(stream)
	if err != nil {
		s.audit(ctx, store.AuditEvent{Kind: store.AuditPairingFailed, Detail: detail("device left before confirming")})
		return err
	}
	req, err := gw.HandleClientFinish(second.GetClientFinish())
	if err != nil {
		if errors.Is(err, pairing.ErrConfirmationFailed) {
			log.Info("pairing attempt failed key confirmation")
			s.audit(ctx, store.AuditEvent{Kind: store.AuditPairingFailed, Detail: detail("key confirmation failed")})
			return status.Error(codes.PermissionDenied, msgBadCode)
		}
		s.audit(ctx, store.AuditEvent{Kind: store.AuditPairingFailed, Detail: detail(err.Error())})
		return status.Error(codes.InvalidArgument, err.Error())
	}
	// The device knew the code: not a guess.
	ticket.Confirmed(s.cfg.Now())

	now := s.cfg.Now()
	rec, err := s.cfg.Store.CompletePairing(ctx, code.ID, store.Request{
		DeviceID:         req.DeviceID,
		PublicKey:        req.PublicKey,
		Name:             req.Name,
		Platform:         req.Platform,
		CSR:              req.CSR,
		VerificationCode: req.VerificationCode,
		GrantKey:         req.GrantKey.Bytes(),
		CreatedAt:        now,
		ExpiresAt:        now.Add(s.cfg.RequestTTL),
	}, now)
	switch {
	case errors.Is(err, store.ErrDeviceRevoked):
		return status.Error(codes.PermissionDenied, msgRevoked)
	case errors.Is(err, store.ErrCodeNotOpen):
		// Another run used the code first.
		return status.Error(codes.PermissionDenied, msgBadCode)
	case err != nil:
		log.Error("recording pairing request", "err", err)
		return status.Error(codes.Internal, "the gateway could not record the pairing request")
	}
	log = log.With("request_id", rec.ID, "device", req.DeviceID)
	log.Info("pairing request confirmed", "state", rec.State)
	// Waiting for an admin is not work the cap on runs is about.
	ticket.Done()

	if rec.State == store.RequestPending {
		if rec, err = s.awaitDecision(ctx, rec, func(p *pairingv1.Pending) error {
			return stream.Send(&pairingv1.PairResponse{Message: &pairingv1.PairResponse_Pending{Pending: p}})
		}); err != nil {
			return err
		}
	}
	return s.deliver(ctx, rec, log, func(finish []byte) error {
		return stream.Send(&pairingv1.PairResponse{Message: &pairingv1.PairResponse_ServerFinish{ServerFinish: finish}})
	})
}

// awaitDecision tells the device it waits (sendPending), then waits for
// approval, rejection, expiry, or the device leaving (ctx ending).
func (s *Service) awaitDecision(ctx context.Context, rec store.Request, sendPending func(*pairingv1.Pending) error) (store.Request, error) {
	decided, stop := s.wait(rec.ID)
	defer stop()
	err := sendPending(&pairingv1.Pending{
		RequestId:        rec.ID,
		VerificationCode: rec.VerificationCode,
		ExpiresAtUnixMs:  rec.ExpiresAt.UnixMilli(),
	})
	if err != nil {
		return rec, err
	}
	// Check once after registering the waiter: a decision may have landed
	// between CompletePairing and here.
	for {
		cur, err := s.cfg.Store.GetRequest(ctx, rec.ID)
		if err != nil {
			return rec, status.Error(codes.Internal, "the gateway lost the pairing request")
		}
		switch cur.State {
		case store.RequestApproved:
			return cur, nil
		case store.RequestRejected:
			return cur, status.Error(codes.PermissionDenied, msgRejected)
		case store.RequestExpired:
			return cur, status.Error(codes.DeadlineExceeded, msgExpired)
		}
		remaining := cur.ExpiresAt.Sub(s.cfg.Now())
		if remaining <= 0 {
			return cur, status.Error(codes.DeadlineExceeded, msgExpired)
		}
		timer := time.NewTimer(remaining)
		select {
		case <-decided:
			timer.Stop()
			decided, stop = s.wait(rec.ID)
			defer stop()
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return cur, status.FromContextError(ctx.Err()).Err()
		}
	}
}

// deliver issues the certificate for an approved request and sends the
// sealed grant (sendFinish).
func (s *Service) deliver(ctx context.Context, rec store.Request, log *slog.Logger, sendFinish func([]byte) error) error {
	now := s.cfg.Now()
	cert, err := s.cfg.CA.IssueDeviceCertificate(rec.CSR, identity.IssueOptions{Now: now, Lifetime: s.cfg.DeviceCertLifetime, Rand: s.cfg.Rand})
	if err != nil {
		log.Error("issuing device certificate", "err", err)
		return status.Error(codes.Internal, "the gateway could not issue the certificate")
	}
	if _, err := s.cfg.Store.IssueCertificate(ctx, rec.ID, CertificateRecord(rec.DeviceID, cert), now); err != nil {
		if errors.Is(err, store.ErrDeviceRevoked) {
			return status.Error(codes.PermissionDenied, msgRevoked)
		}
		log.Error("recording issued certificate", "err", err)
		return status.Error(codes.Internal, "the gateway could not record the certificate")
	}
	key, err := pairing.GrantKeyFromBytes(rec.GrantKey)
	if err != nil {
		return status.Error(codes.Internal, "the gateway lost the pairing key")
	}
	finish, err := pairing.SealGrant(key, pairing.Grant{
		DeviceCertificate: cert.Raw,
		CACertificate:     s.cfg.CA.Certificate().Raw,
		Addresses:         s.cfg.Addresses(),
		GatewayName:       s.cfg.GatewayName,
	})
	if err != nil {
		return status.Error(codes.Internal, "the gateway could not seal its answer")
	}
	log.Info("device paired", "not_after", cert.NotAfter)
	return sendFinish(finish)
}

// auditTimeout bounds writing one audit event.
const auditTimeout = 10 * time.Second

// audit records e, a refused attempt, with where it came from. A write to
// the store outlives the call's context: a device that hangs up
// mid-exchange is what many of these events are about, and its leaving
// cancels the stream's context.
func (s *Service) audit(ctx context.Context, e store.AuditEvent) {
	e.At = s.cfg.Now()
	e.Source = source(ctx)
	if s.cfg.Audit != nil {
		s.cfg.Audit.Count(e)
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), auditTimeout)
	defer cancel()
	if err := s.cfg.Store.Audit(ctx, e); err != nil {
		s.cfg.Logger.Error("writing audit log", "kind", e.Kind, "err", err)
	}
}

// source is the IP address of the client of ctx's RPC, or "".
func source(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return ""
	}
	return auditlog.Source(p.Addr)
}

// CertificateRecord is how the store keeps an issued certificate.
func CertificateRecord(id identity.DeviceID, cert *x509.Certificate) store.Certificate {
	return store.Certificate{
		Serial:    fmt.Sprintf("%x", cert.SerialNumber),
		DeviceID:  id,
		NotBefore: cert.NotBefore,
		NotAfter:  cert.NotAfter,
		DER:       cert.Raw,
	}
}

// DefaultRenewalGrace is how long after its last certificate ran out a
// device may still renew by signing a challenge.
const DefaultRenewalGrace = 30 * 24 * time.Hour

// RenewExpired renews the certificate of a device whose certificate ran
// out: it proves it still holds the key it paired with by signing a fresh
// challenge. Revoked devices and devices past the grace period must pair
// again.
func (s *Service) RenewExpired(stream pairingv1.Pairing_RenewExpiredServer) error {
	ctx := stream.Context()
	ticket, err := s.admit(ctx)
	if err != nil {
		return err
	}
	defer ticket.Done()
	first, err := s.recvRenew(stream)
	if err != nil {
		return err
	}
	start := first.GetStart()
	if start == nil {
		return status.Error(codes.InvalidArgument, "renewal must start with the device ID and a certificate request")
	}
	id, err := identity.ParseDeviceID(start.DeviceId)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	dev, err := s.cfg.Store.GetDevice(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return status.Error(codes.PermissionDenied, "this device is not paired with the gateway; pair it again")
	}
	if err != nil {
		return status.Error(codes.Internal, "the gateway could not look up the device")
	}
	if !dev.RevokedAt.IsZero() {
		return status.Error(codes.PermissionDenied, msgRevoked)
	}
	if s.cfg.Now().After(dev.CertificateNotAfter.Add(s.cfg.RenewalGrace)) {
		return status.Errorf(codes.PermissionDenied, "the device's certificate ran out more than %s ago; pair it again", s.cfg.RenewalGrace)
	}
	csr, err := x509.ParseCertificateRequest(start.Csr)
	if err != nil || csr.CheckSignature() != nil {
		return status.Error(codes.InvalidArgument, "the certificate request is invalid")
	}
	if pub, ok := csr.PublicKey.(ed25519.PublicKey); !ok || !pub.Equal(ed25519.PublicKey(dev.PublicKey)) {
		return status.Error(codes.PermissionDenied, "the certificate request is not for this device's key")
	}
	challenge := make([]byte, 32)
	if _, err := io.ReadFull(s.cfg.Rand, challenge); err != nil {
		return status.Error(codes.Internal, "the gateway could not make a challenge")
	}
	if err := stream.Send(&pairingv1.RenewResponse{Message: &pairingv1.RenewResponse_Challenge{Challenge: challenge}}); err != nil {
		return err
	}
	second, err := s.recvRenew(stream)
	if err != nil {
		return err
	}
	msg := pairing.RenewalMessage(challenge, identity.CertificateFingerprint(s.cfg.ServerCertificate()), start.Csr)
	if err := identity.VerifyWithContext(dev.PublicKey, pairing.RenewalContext, msg, second.GetSignature()); err != nil {
		s.audit(ctx, store.AuditEvent{Kind: store.AuditCertificateRefused, DeviceID: id, Detail: "renewal signature did not verify"})
		return status.Error(codes.PermissionDenied, "the signature does not match the device's key")
	}
	ticket.Confirmed(s.cfg.Now())
	now := s.cfg.Now()
	cert, err := s.cfg.CA.IssueDeviceCertificate(start.Csr, identity.IssueOptions{Now: now, Lifetime: s.cfg.DeviceCertLifetime, Rand: s.cfg.Rand})
	if err != nil {
		return status.Error(codes.Internal, "the gateway could not issue the certificate")
	}
	if err := s.cfg.Store.RecordCertificate(ctx, CertificateRecord(id, cert), now); err != nil {
		if errors.Is(err, store.ErrDeviceRevoked) {
			return status.Error(codes.PermissionDenied, msgRevoked)
		}
		return status.Error(codes.Internal, "the gateway could not record the certificate")
	}
	s.cfg.Logger.Info("renewed an expired certificate", "device", id, "not_after", cert.NotAfter)
	return stream.Send(&pairingv1.RenewResponse{Message: &pairingv1.RenewResponse_Certificate{Certificate: cert.Raw}})
}

// recvRenew reads the next renewal message with the step deadline.
func (s *Service) recvRenew(stream pairingv1.Pairing_RenewExpiredServer) (*pairingv1.RenewRequest, error) {
	return recvWithin(stream.Recv, s.cfg.StepTimeout)
}
