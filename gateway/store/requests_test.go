package store

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

// requestIn returns a request brought to state.
func requestIn(t *testing.T, s *Store, state RequestState) Request {
	t.Helper()
	ctx := context.Background()
	_, r := pair(t, s, false, testRequest(t))
	var err error
	switch state {
	case RequestPending:
	case RequestApproved:
		_, err = s.ApproveRequest(ctx, r.ID, t0)
	case RequestRejected:
		_, err = s.RejectRequest(ctx, r.ID, t0)
	case RequestExpired:
		_, err = s.ApproveRequest(ctx, r.ID, r.ExpiresAt)
		if errors.Is(err, ErrRequestExpired) {
			err = nil
		}
	case RequestIssued:
		if _, err = s.ApproveRequest(ctx, r.ID, t0); err == nil {
			_, err = s.IssueCertificate(ctx, r.ID, testCert(r.DeviceID, "s-"+r.ID, t0.Add(time.Hour)), t0)
		}
	default:
		t.Fatalf("unknown state %s", state)
	}
	if err != nil {
		t.Fatalf("bringing a request to %s: %v", state, err)
	}
	got, err := s.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != state {
		t.Fatalf("request is %s, want %s", got.State, state)
	}
	return got
}

func TestRequestTransitions(t *testing.T) { bothBackends(t, testRequestTransitions) }

func testRequestTransitions(t *testing.T, be backend) {
	t.Parallel()
	type action string
	const (
		approve action = "approve"
		reject  action = "reject"
		issue   action = "issue"
	)
	tests := []struct {
		from    RequestState
		act     action
		want    RequestState // state afterwards
		wantErr error
	}{
		{RequestPending, approve, RequestApproved, nil},
		{RequestPending, reject, RequestRejected, nil},
		{RequestPending, issue, RequestPending, ErrIllegalTransition},
		{RequestApproved, approve, RequestApproved, ErrIllegalTransition},
		{RequestApproved, reject, RequestApproved, ErrIllegalTransition},
		{RequestApproved, issue, RequestIssued, nil},
		{RequestRejected, approve, RequestRejected, ErrIllegalTransition},
		{RequestRejected, reject, RequestRejected, ErrIllegalTransition},
		{RequestRejected, issue, RequestRejected, ErrIllegalTransition},
		{RequestExpired, approve, RequestExpired, ErrIllegalTransition},
		{RequestExpired, reject, RequestExpired, ErrIllegalTransition},
		{RequestExpired, issue, RequestExpired, ErrIllegalTransition},
		{RequestIssued, approve, RequestIssued, ErrIllegalTransition},
		{RequestIssued, reject, RequestIssued, ErrIllegalTransition},
		{RequestIssued, issue, RequestIssued, ErrIllegalTransition},
	}
	s, _ := be.openTest(t)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.from, tt.act), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			r := requestIn(t, s, tt.from)
			now := t0.Add(time.Second)
			var err error
			switch tt.act {
			case approve:
				_, err = s.ApproveRequest(ctx, r.ID, now)
			case reject:
				_, err = s.RejectRequest(ctx, r.ID, now)
			case issue:
				_, err = s.IssueCertificate(ctx, r.ID, testCert(r.DeviceID, "t-"+r.ID, t0.Add(2*time.Hour)), now)
			}
			wantErr(t, string(tt.act), err, tt.wantErr)
			got, err := s.GetRequest(ctx, r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if got.State != tt.want {
				t.Fatalf("state %s, want %s", got.State, tt.want)
			}
			// A refused transition changes nothing.
			if tt.wantErr != nil && (string(got.GrantKey) != string(r.GrantKey) || !got.DecidedAt.Equal(r.DecidedAt)) {
				t.Fatalf("refused %s changed the request: %+v -> %+v", tt.act, r, got)
			}
			// Decided requests keep no grant key except while approved.
			if (got.State == RequestRejected || got.State == RequestExpired || got.State == RequestIssued) && got.GrantKey != nil {
				t.Fatalf("%s request still holds its grant key", got.State)
			}
			if got.State != RequestPending && got.DecidedAt.IsZero() {
				t.Fatalf("%s request without DecidedAt", got.State)
			}
		})
	}

	t.Run("unknown request", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		_, err := s.ApproveRequest(ctx, "nope", t0)
		wantErr(t, "approve", err, ErrNotFound)
		_, err = s.RejectRequest(ctx, "nope", t0)
		wantErr(t, "reject", err, ErrNotFound)
		_, err = s.IssueCertificate(ctx, "nope", testCert(testRequest(t).DeviceID, "x", t0.Add(time.Hour)), t0)
		wantErr(t, "issue", err, ErrNotFound)
		_, err = s.GetRequest(ctx, "nope")
		wantErr(t, "get", err, ErrNotFound)
	})
}

func TestDecideAfterExpiry(t *testing.T) { bothBackends(t, testDecideAfterExpiry) }

func testDecideAfterExpiry(t *testing.T, be backend) {
	t.Parallel()
	s, _ := be.openTest(t)
	for _, reject := range []bool{false, true} {
		ctx := context.Background()
		r := requestIn(t, s, RequestPending)
		var err error
		if reject {
			_, err = s.RejectRequest(ctx, r.ID, r.ExpiresAt.Add(time.Minute))
		} else {
			_, err = s.ApproveRequest(ctx, r.ID, r.ExpiresAt.Add(time.Minute))
		}
		wantErr(t, fmt.Sprintf("decide after expiry (reject=%t)", reject), err, ErrRequestExpired)
		got, err := s.GetRequest(ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != RequestExpired || got.GrantKey != nil || !got.DecidedAt.Equal(r.ExpiresAt) {
			t.Fatalf("request after a late decision: %+v", got)
		}
	}
}

func TestApproveRequestValues(t *testing.T) { bothBackends(t, testApproveRequestValues) }

func testApproveRequestValues(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	r := requestIn(t, s, RequestPending)
	now := t0.Add(3 * time.Second)
	got, err := s.ApproveRequest(ctx, r.ID, now)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != RequestApproved || !got.DecidedAt.Equal(now) || string(got.GrantKey) != string(r.GrantKey) {
		t.Fatalf("approved %+v", got)
	}

	pending, err := s.ListRequests(ctx, false, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Fatalf("pending requests %+v", pending)
	}
	r2 := requestIn(t, s, RequestPending)
	all, err := s.ListRequests(ctx, true, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].ID != r.ID && all[1].ID != r.ID {
		t.Fatalf("all requests %+v", all)
	}
	// Listing after r2's expiry marks it expired.
	pending, err = s.ListRequests(ctx, false, r2.ExpiresAt)
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 0 {
		t.Fatalf("pending after expiry %+v", pending)
	}
	if got, _ := s.GetRequest(ctx, r2.ID); got.State != RequestExpired {
		t.Fatalf("r2 %+v", got)
	}
}

func TestAutoApprove(t *testing.T) { bothBackends(t, testAutoApprove) }

func testAutoApprove(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	_, r := pair(t, s, true, testRequest(t))
	if r.State != RequestApproved || !r.DecidedAt.Equal(t0) {
		t.Fatalf("auto-approved request %+v", r)
	}
	got, err := s.GetRequest(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != RequestApproved {
		t.Fatalf("stored %+v", got)
	}
}

func TestIssueCertificate(t *testing.T) { bothBackends(t, testIssueCertificate) }

func testIssueCertificate(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	r := requestIn(t, s, RequestApproved)

	other, _ := newDevice(t)
	_, err := s.IssueCertificate(ctx, r.ID, testCert(other, "wrong", t0.Add(time.Hour)), t0)
	if err == nil {
		t.Fatal("IssueCertificate accepted a certificate for another device")
	}
	_, err = s.IssueCertificate(ctx, r.ID, Certificate{Serial: "x", NotBefore: t0, NotAfter: t0}, t0)
	if err == nil {
		t.Fatal("IssueCertificate accepted an empty certificate")
	}

	cert := testCert(r.DeviceID, "0a1b2c", t0.Add(24*time.Hour))
	cert.DeviceID = [20]byte{} // filled from the request
	now := t0.Add(time.Minute)
	d, err := s.IssueCertificate(ctx, r.ID, cert, now)
	if err != nil {
		t.Fatal(err)
	}
	if d.ID != r.DeviceID || d.Name != r.Name || d.Platform != r.Platform || string(d.PublicKey) != string(r.PublicKey) ||
		!d.PairedAt.Equal(now) || !d.RevokedAt.IsZero() || !d.CertificateNotAfter.Equal(cert.NotAfter) {
		t.Fatalf("device %+v", d)
	}
	got, _ := s.GetRequest(ctx, r.ID)
	if got.State != RequestIssued || got.GrantKey != nil || got.CertificateSerial != "0a1b2c" {
		t.Fatalf("issued request %+v", got)
	}

	// Renewal.
	renewed := testCert(r.DeviceID, "0a1b2d", t0.Add(48*time.Hour))
	if err := s.RecordCertificate(ctx, renewed, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := s.RecordCertificate(ctx, renewed, t0.Add(time.Hour)); err == nil {
		t.Fatal("RecordCertificate accepted a duplicate serial")
	}
	d, _ = s.GetDevice(ctx, r.DeviceID)
	if !d.CertificateNotAfter.Equal(renewed.NotAfter) {
		t.Fatalf("device after renewal %+v", d)
	}
	stranger, _ := newDevice(t)
	wantErr(t, "renewal of an unknown device", s.RecordCertificate(ctx, testCert(stranger, "zz", t0.Add(time.Hour)), t0), ErrNotFound)

	// The same device pairing again updates its record.
	again := testRequest(t)
	again.DeviceID, again.PublicKey, again.Name = r.DeviceID, r.PublicKey, "renamed"
	_, ar := pair(t, s, true, again)
	d2, err := s.IssueCertificate(ctx, ar.ID, testCert(r.DeviceID, "0a1b2e", t0.Add(72*time.Hour)), t0.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if d2.Name != "renamed" || !d2.CertificateNotAfter.Equal(t0.Add(72*time.Hour)) {
		t.Fatalf("re-paired device %+v", d2)
	}
	devs, err := s.ListDevices(ctx)
	if err != nil || len(devs) != 1 {
		t.Fatalf("ListDevices = %+v, %v", devs, err)
	}
}
