package node

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/palyra/palyra-go/identity"
	"github.com/palyra/palyra-go/identity/pairing"
	"github.com/palyra/palyra-go/identity/secretstore"
	"github.com/palyra/palyra-go/node/carrier"
	"github.com/palyra/palyra-go/node/pairclient"
)

// itemGrantKey is the secret key of a pending pairing request: the gateway
// seals its answer under it.
const itemGrantKey = "pairing-grant-key"

// savePending keeps a request that waits for approval, so a later Pair,
// Run or restart can collect the answer.
func (a *Agent) savePending(p pairclient.Pending) error {
	if err := a.cfg.Secrets.Set(itemGrantKey, p.Resumable.GrantKey.Bytes()); err != nil {
		return fmt.Errorf("storing the pending pairing request's key: %w", err)
	}
	sp := StoredPending{
		RequestID: p.RequestID, VerificationCode: p.VerificationCode, ExpiresAt: p.ExpiresAt,
		Address: p.Address, ServerChain: p.Resumable.ServerChain,
	}
	if p.Resumable.CAPin != nil {
		sp.CAPin = p.Resumable.CAPin[:]
	}
	if err := a.writeJSON(PendingFile, sp); err != nil {
		return fmt.Errorf("keeping the pending pairing request: %w", err)
	}
	a.update(func(s *Status) {
		s.PairingRequestID, s.PairingExpiresAt, s.Gateways = sp.RequestID, sp.ExpiresAt, []string{sp.Address}
	})
	return nil
}

// clearPending forgets a pending request (answered, or replaced).
func (a *Agent) clearPending() error {
	if err := os.Remove(filepath.Join(a.cfg.ConfigDir, PendingFile)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("forgetting the pending pairing request: %w", err)
	}
	if err := a.cfg.Secrets.Delete(itemGrantKey); err != nil && !errors.Is(err, secretstore.ErrNotFound) {
		return fmt.Errorf("forgetting the pending pairing request's key: %w", err)
	}
	return nil
}

// loadPending shows a stored pending request in the status; called by
// load, under mu, for a node without a certificate.
func (a *Agent) loadPending() error {
	p, err := ReadPending(a.cfg.ConfigDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	a.status.State = StatePending
	a.status.VerificationCode, a.status.PairingRequestID, a.status.PairingExpiresAt = p.VerificationCode, p.RequestID, p.ExpiresAt
	a.status.Gateways = []string{p.Address}
	a.status.LastError = "still waiting for approval; the certificate is collected once the gateway's admin approves"
	return nil
}

// resumable reads the stored pending request, with its key.
func (a *Agent) resumable() (pairclient.Pending, bool, error) {
	p, err := ReadPending(a.cfg.ConfigDir)
	if errors.Is(err, os.ErrNotExist) {
		return pairclient.Pending{}, false, nil
	}
	if err != nil {
		return pairclient.Pending{}, false, err
	}
	b, err := a.cfg.Secrets.Get(itemGrantKey)
	if err != nil {
		return pairclient.Pending{}, false, fmt.Errorf("reading the pending pairing request's key: %w", err)
	}
	gk, err := pairing.GrantKeyFromBytes(b)
	if err != nil {
		return pairclient.Pending{}, false, fmt.Errorf("reading the pending pairing request's key: %w", err)
	}
	r := pairing.Resumable{GrantKey: gk, ServerChain: p.ServerChain}
	if len(p.CAPin) > 0 {
		var fp identity.Fingerprint
		if len(p.CAPin) != len(fp) {
			return pairclient.Pending{}, false, fmt.Errorf("reading the pending pairing request: its CA pin has %d bytes", len(p.CAPin))
		}
		copy(fp[:], p.CAPin)
		r.CAPin = &fp
	}
	return pairclient.Pending{RequestID: p.RequestID, VerificationCode: p.VerificationCode, ExpiresAt: p.ExpiresAt,
		Address: p.Address, Resumable: r}, true, nil
}

// HasPendingPairing reports whether a pairing request waits for approval
// (one Pair started, whose command ended before the answer).
func (a *Agent) HasPendingPairing() bool {
	_, ok, _ := a.resumable()
	return ok
}

// keepPending reports whether a pairing that ended with err leaves its
// request worth collecting later: the device gave up or lost the
// connection, the gateway did not answer or asked it to come back later.
func keepPending(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, pairclient.ErrUnreachable) || errors.Is(err, pairclient.ErrThrottled)
}

// resume collects the answer to the stored pending request.
func (a *Agent) resume(ctx context.Context, p pairclient.Pending, onPending func(pairclient.Pending)) (*pairing.Result, error) {
	key, err := a.deviceKey()
	if err != nil {
		return nil, err
	}
	res, err := pairclient.Resume(ctx, pairclient.ResumeOptions{Pending: p, Key: key, Now: a.cfg.Now, OnPending: func(p pairclient.Pending) {
		a.update(func(s *Status) { s.State, s.VerificationCode, s.LastError = StatePending, p.VerificationCode, "" })
		if onPending != nil {
			onPending(p)
		}
	}})
	if err != nil && !keepPending(err) {
		if cerr := a.clearPending(); cerr != nil {
			a.cfg.Logger.Error("forgetting the pending pairing request", "err", cerr)
		}
		return nil, fmt.Errorf("pairing request %s: %w", p.RequestID, err)
	}
	return res, err
}

// awaitPairing is Run's start on a node that is not paired but has a
// request pending: it collects the certificate once the admin approves,
// retrying with backoff while the gateway cannot be reached.
func (a *Agent) awaitPairing(ctx context.Context) error {
	backoff := carrier.NewBackoff(nil)
	for {
		_, err := a.Pair(ctx, PairOptions{})
		var throttled *pairclient.ThrottledError
		if err == nil || !errors.Is(err, pairclient.ErrUnreachable) && !errors.As(err, &throttled) {
			return err
		}
		wait := backoff.Next()
		if throttled != nil {
			wait = max(wait, throttled.RetryAfter)
		}
		a.update(func(s *Status) { s.RetryAt = a.cfg.Now().Add(wait) })
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-timer.C:
		}
	}
}

// recordRevoked remembers that the gateway revoked this device, with the
// date, until the owner forgets the gateway or pairs again. The status
// turns revoked only here, with its date, so that no reader ever sees a
// revoked status without one.
func (a *Agent) recordRevoked() {
	a.confMu.Lock()
	defer a.confMu.Unlock()
	a.mu.Lock()
	conf := a.conf
	a.mu.Unlock()
	if conf.RevokedAt.IsZero() {
		conf.RevokedAt = a.cfg.Now().UTC()
		if err := a.writeJSON(ConfigFile, conf); err != nil {
			a.cfg.Logger.Error("recording the revocation", "err", err)
		}
		a.mu.Lock()
		a.conf = conf
		a.mu.Unlock()
	}
	a.update(func(s *Status) {
		s.State, s.ConnectedSince = StateRevoked, time.Time{}
		s.RevokedAt, s.LastError = conf.RevokedAt, revokedMessage(conf.RevokedAt)
	})
}

// revokedMessage says what happened and what to do next.
func revokedMessage(at time.Time) string {
	return fmt.Sprintf("revoked by the gateway on %s; forget the gateway (palyra node forget, or \"Forget gateway…\") or pair again",
		at.Local().Format("2006-01-02 15:04 MST"))
}
