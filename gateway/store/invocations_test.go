package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/palyra/palyra-go/identity"
)

var invocationSeq atomic.Uint64

// testRequestID returns a ULID for at whose random part is a counter, so
// IDs are unique in the process and need no randomness.
func testRequestID(t testing.TB, at time.Time) string {
	t.Helper()
	var r [10]byte
	binary.BigEndian.PutUint64(r[2:], invocationSeq.Add(1))
	u, err := ulid.New(ulid.Timestamp(at), bytes.NewReader(r[:]))
	if err != nil {
		t.Fatal(err)
	}
	return u.String()
}

// testInvocation returns an invocation for dev created at created, queued
// for an hour.
func testInvocation(t testing.TB, dev identity.DeviceID, created time.Time) Invocation {
	t.Helper()
	return Invocation{
		RequestID:  testRequestID(t, created),
		DeviceID:   dev,
		Capability: "system.notify",
		Args:       []byte(`{"title":"hi"}`),
		Caller:     "admin",
		CreatedAt:  created,
		ExpiresAt:  created.Add(time.Hour),
		Timeout:    30 * time.Second,
	}
}

// TestRequestIDsOfEarlierReleasesStillParse keeps request IDs written by the
// gateway's earlier, hand-written ULID encoder readable: the same bytes give
// the same text, and a stored call under such an ID is found by it.
func TestRequestIDsOfEarlierReleasesStillParse(t *testing.T) {
	bothBackends(t, testRequestIDsOfEarlierReleasesStillParse)
}

func testRequestIDsOfEarlierReleasesStillParse(t *testing.T, be backend) {
	t.Parallel()
	ff := bytes.Repeat([]byte{0xFF}, 16)
	aa := bytes.Repeat([]byte{0x55}, 16)
	tests := []struct {
		id     string
		bytes  []byte
		timeMS uint64
	}{
		// ulid/javascript's published example, and two of the old package's vectors.
		{"01ARYZ6S41TSV4RRFFQ69G5FAV", nil, 1469918176385},
		{"7ZZZZZZZZZZZZZZZZZZZZZZZZZ", ff, 1<<48 - 1},
		{"2NANANANANANANANANANANANAN", aa, 0x555555555555},
		{"00000000010000000000000000", []byte{5: 1, 15: 0}, 1},
	}
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	for _, tt := range tests {
		u, err := ulid.ParseStrict(tt.id)
		if err != nil {
			t.Fatalf("ParseStrict(%s): %v", tt.id, err)
		}
		if tt.bytes != nil && !bytes.Equal(u[:], tt.bytes) {
			t.Errorf("%s = %x, want %x", tt.id, u[:], tt.bytes)
		}
		if u.Time() != tt.timeMS || u.String() != tt.id {
			t.Errorf("%s: time %d, text %s; want %d, %s", tt.id, u.Time(), u, tt.timeMS, tt.id)
		}
		inv := testInvocation(t, d.ID, t0)
		inv.RequestID = tt.id
		mustQueue(t, s, inv)
		got, err := s.GetInvocation(ctx, tt.id)
		if err != nil || got.RequestID != tt.id {
			t.Fatalf("GetInvocation(%s) = %q, %v", tt.id, got.RequestID, err)
		}
	}
}

func mustQueue(t testing.TB, s *Store, inv Invocation) {
	t.Helper()
	if err := s.QueueInvocation(context.Background(), inv); err != nil {
		t.Fatalf("QueueInvocation: %v", err)
	}
}

func mustGetInvocation(t testing.TB, s *Store, id string) Invocation {
	t.Helper()
	inv, err := s.GetInvocation(context.Background(), id)
	if err != nil {
		t.Fatalf("GetInvocation: %v", err)
	}
	return inv
}

// auditKindsFor returns the kinds of the audit events for requestID,
// oldest first.
func auditKindsFor(t testing.TB, s *Store, requestID string) []string {
	t.Helper()
	events, err := s.ListAudit(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for i := len(events) - 1; i >= 0; i-- {
		if events[i].RequestID == requestID {
			kinds = append(kinds, events[i].Kind)
		}
	}
	return kinds
}

func requestIDs(invs []Invocation) []string {
	var ids []string
	for _, inv := range invs {
		ids = append(ids, inv.RequestID)
	}
	return ids
}

func TestInvocationLifecycle(t *testing.T) { bothBackends(t, testInvocationLifecycle) }

func testInvocationLifecycle(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, path := be.openTest(t)
	d, _ := pairedDevice(t, s)

	inv := testInvocation(t, d.ID, t0)
	mustQueue(t, s, inv)
	got := mustGetInvocation(t, s, inv.RequestID)
	want := inv
	want.State = InvocationQueued
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("queued invocation\n%+v\nwant\n%+v", got, want)
	}

	pending, err := s.PendingInvocations(ctx, d.ID, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || !reflect.DeepEqual(pending[0], want) {
		t.Fatalf("pending %+v, want [%+v]", pending, want)
	}

	// Delivered, then delivered again after a reconnect.
	for attempt := 1; attempt <= 2; attempt++ {
		got, err := s.MarkDelivered(ctx, inv.RequestID, t0.Add(time.Duration(attempt)*time.Minute))
		if err != nil {
			t.Fatalf("delivery %d: %v", attempt, err)
		}
		if got.State != InvocationDelivered || got.Attempts != attempt {
			t.Fatalf("after delivery %d: state %s, attempts %d", attempt, got.State, got.Attempts)
		}
		pending, err := s.PendingInvocations(ctx, d.ID, t0.Add(3*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if len(pending) != 1 || pending[0].State != InvocationDelivered || pending[0].Attempts != attempt {
			t.Fatalf("pending after delivery %d: %+v", attempt, pending)
		}
	}

	result := []byte("\x0a\x02ok\x10\x01") // opaque to the store
	finished := t0.Add(3 * time.Minute)
	if err := s.FinishInvocation(ctx, inv.RequestID, result, true, finished); err != nil {
		t.Fatal(err)
	}
	want.State, want.Attempts, want.Result, want.FinishedAt = InvocationDone, 2, result, finished
	if got := mustGetInvocation(t, s, inv.RequestID); !reflect.DeepEqual(got, want) {
		t.Fatalf("finished invocation\n%+v\nwant\n%+v", got, want)
	}
	if pending, err := s.PendingInvocations(ctx, d.ID, finished); err != nil || len(pending) != 0 {
		t.Fatalf("pending after the result: %+v, %v", pending, err)
	}
	if kinds := auditKindsFor(t, s, inv.RequestID); !reflect.DeepEqual(kinds,
		[]string{AuditInvocationQueued, AuditInvocationDone}) {
		t.Fatalf("audit kinds %v", kinds)
	}

	// The result survives a restart.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := be.openAt(t, path)
	defer s2.Close()
	if got := mustGetInvocation(t, s2, inv.RequestID); !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopening\n%+v\nwant\n%+v", got, want)
	}
	wantErr(t, "finishing again after reopening", s2.FinishInvocation(ctx, inv.RequestID, []byte("x"), true, finished),
		ErrIllegalTransition)
}

func TestQueueInvocationDuplicate(t *testing.T) { bothBackends(t, testQueueInvocationDuplicate) }

func testQueueInvocationDuplicate(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	inv := testInvocation(t, d.ID, t0)
	mustQueue(t, s, inv)

	again := inv
	again.Capability = "system.info"
	wantErr(t, "queueing a duplicate", s.QueueInvocation(ctx, again), ErrDuplicate)
	if err := s.FinishInvocation(ctx, inv.RequestID, nil, false, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	err := s.QueueInvocation(ctx, again)
	wantErr(t, "queueing a duplicate of a finished one", err, ErrDuplicate)
	if !strings.Contains(err.Error(), inv.RequestID) {
		t.Errorf("error %q does not name the request", err)
	}
	got := mustGetInvocation(t, s, inv.RequestID)
	if got.Capability != inv.Capability || got.State != InvocationFailed {
		t.Fatalf("the duplicate changed the row: %+v", got)
	}
	if kinds := auditKindsFor(t, s, inv.RequestID); !reflect.DeepEqual(kinds,
		[]string{AuditInvocationQueued, AuditInvocationFailed}) {
		t.Fatalf("audit kinds %v", kinds)
	}
}

func TestQueueInvocationRejects(t *testing.T) { bothBackends(t, testQueueInvocationRejects) }

func testQueueInvocationRejects(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	revoked, _ := pairedDevice(t, s)
	if _, err := s.RevokeDevice(ctx, revoked.ID, t0); err != nil {
		t.Fatal(err)
	}
	unpaired, _ := newDevice(t)

	tests := []struct {
		name    string
		edit    func(*Invocation)
		wantErr error  // checked with errors.Is when set
		wantMsg string // checked in the message when set
	}{
		{"no request ID", func(i *Invocation) { i.RequestID = "" }, ulid.ErrDataSize, "request ID"},
		{"request ID not a ULID", func(i *Invocation) { i.RequestID = "req-1" }, ulid.ErrDataSize, ""},
		{"request ID outside the alphabet", func(i *Invocation) { i.RequestID = "01ARYZ6S41TSV4RRFFQ69G5FAU" }, ulid.ErrInvalidCharacters, ""},
		{"request ID above 128 bits", func(i *Invocation) { i.RequestID = "80000000000000000000000000" }, ulid.ErrOverflow, ""},
		{"lower-case request ID", func(i *Invocation) { i.RequestID = strings.ToLower(i.RequestID) }, nil, "canonical"},
		{"no device", func(i *Invocation) { i.DeviceID = identity.DeviceID{} }, nil, "no device"},
		{"no capability", func(i *Invocation) { i.Capability = "" }, nil, "no capability"},
		{"args not JSON", func(i *Invocation) { i.Args = []byte("{") }, nil, "JSON"},
		{"no creation time", func(i *Invocation) { i.CreatedAt = time.Time{} }, nil, "creation"},
		{"expiry at creation", func(i *Invocation) { i.ExpiresAt = i.CreatedAt }, nil, "expiry"},
		{"no timeout", func(i *Invocation) { i.Timeout = 0 }, nil, "timeout"},
		{"negative timeout", func(i *Invocation) { i.Timeout = -time.Second }, nil, "timeout"},
		{"unpaired device", func(i *Invocation) { i.DeviceID = unpaired }, ErrNotFound, ""},
		{"revoked device", func(i *Invocation) { i.DeviceID = revoked.ID }, ErrDeviceRevoked, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			inv := testInvocation(t, d.ID, t0)
			tt.edit(&inv)
			err := s.QueueInvocation(ctx, inv)
			if err == nil {
				t.Fatal("queued")
			}
			if tt.wantErr != nil {
				wantErr(t, "QueueInvocation", err, tt.wantErr)
			}
			if tt.wantMsg != "" && !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("error %q does not say %q", err, tt.wantMsg)
			}
			if inv.RequestID != "" {
				if _, err := s.GetInvocation(ctx, inv.RequestID); !errors.Is(err, ErrNotFound) {
					t.Fatalf("refused invocation was stored (%v)", err)
				}
			}
		})
	}
	// Empty args are fine and read back as nil.
	inv := testInvocation(t, d.ID, t0)
	inv.Args = []byte{}
	mustQueue(t, s, inv)
	if got := mustGetInvocation(t, s, inv.RequestID); got.Args != nil {
		t.Fatalf("empty args read back as %q", got.Args)
	}
}

// invocationIn returns a fresh invocation (created at t0, expiring at
// t0+1h) brought to state.
func invocationIn(t *testing.T, s *Store, dev identity.DeviceID, state InvocationState) Invocation {
	t.Helper()
	ctx := context.Background()
	inv := testInvocation(t, dev, t0)
	mustQueue(t, s, inv)
	var err error
	switch state {
	case InvocationQueued:
	case InvocationDelivered:
		_, err = s.MarkDelivered(ctx, inv.RequestID, t0)
	case InvocationDone:
		err = s.FinishInvocation(ctx, inv.RequestID, []byte("r"), true, t0)
	case InvocationFailed:
		err = s.FinishInvocation(ctx, inv.RequestID, []byte("r"), false, t0)
	case InvocationCancelled:
		_, _, err = s.CancelInvocation(ctx, inv.RequestID, []byte("c"), t0)
	case InvocationExpired:
		_, err = s.MarkDelivered(ctx, inv.RequestID, inv.ExpiresAt)
		if errors.Is(err, ErrIllegalTransition) {
			err = nil
		}
	default:
		t.Fatalf("unknown state %s", state)
	}
	if err != nil {
		t.Fatalf("bringing an invocation to %s: %v", state, err)
	}
	got := mustGetInvocation(t, s, inv.RequestID)
	if got.State != state {
		t.Fatalf("invocation is %s, want %s", got.State, state)
	}
	return got
}

func TestInvocationTransitions(t *testing.T) { bothBackends(t, testInvocationTransitions) }

func testInvocationTransitions(t *testing.T, be backend) {
	t.Parallel()
	type action string
	const (
		deliver action = "deliver"
		finish  action = "finish"
		cancel  action = "cancel"
	)
	tests := []struct {
		from         InvocationState
		act          action
		want         InvocationState
		wantAttempts int
		wantErr      error
	}{
		{InvocationQueued, deliver, InvocationDelivered, 1, nil},
		{InvocationQueued, finish, InvocationDone, 0, nil},
		{InvocationDelivered, deliver, InvocationDelivered, 2, nil},
		{InvocationDelivered, finish, InvocationDone, 1, nil},
		{InvocationDone, deliver, InvocationDone, 0, ErrIllegalTransition},
		{InvocationDone, finish, InvocationDone, 0, ErrIllegalTransition},
		{InvocationExpired, deliver, InvocationExpired, 0, ErrIllegalTransition},
		{InvocationExpired, finish, InvocationExpired, 0, ErrIllegalTransition},
		{InvocationQueued, cancel, InvocationCancelled, 0, nil},
		{InvocationDelivered, cancel, InvocationCancelled, 1, nil},
		{InvocationDone, cancel, InvocationDone, 0, ErrIllegalTransition},
		{InvocationFailed, cancel, InvocationFailed, 0, ErrIllegalTransition},
		{InvocationExpired, cancel, InvocationExpired, 0, ErrIllegalTransition},
		{InvocationCancelled, cancel, InvocationCancelled, 0, ErrIllegalTransition},
		{InvocationCancelled, deliver, InvocationCancelled, 0, ErrIllegalTransition},
		{InvocationCancelled, finish, InvocationCancelled, 0, ErrIllegalTransition},
	}
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s", tt.from, tt.act), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			inv := invocationIn(t, s, d.ID, tt.from)
			now := t0.Add(time.Minute)
			var err error
			switch tt.act {
			case deliver:
				_, err = s.MarkDelivered(ctx, inv.RequestID, now)
			case finish:
				err = s.FinishInvocation(ctx, inv.RequestID, []byte("second"), true, now)
			case cancel:
				_, _, err = s.CancelInvocation(ctx, inv.RequestID, []byte("cancelled"), now)
			}
			wantErr(t, string(tt.act), err, tt.wantErr)
			got := mustGetInvocation(t, s, inv.RequestID)
			if got.State != tt.want || got.Attempts != tt.wantAttempts {
				t.Fatalf("after %s: state %s attempts %d, want %s %d", tt.act, got.State, got.Attempts, tt.want, tt.wantAttempts)
			}
			if tt.wantErr != nil && !reflect.DeepEqual(got, inv) {
				t.Fatalf("a refused %s changed the row:\n%+v\nwas\n%+v", tt.act, got, inv)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		id := testRequestID(t, t0)
		_, err := s.MarkDelivered(ctx, id, t0)
		wantErr(t, "MarkDelivered", err, ErrNotFound)
		wantErr(t, "FinishInvocation", s.FinishInvocation(ctx, id, nil, true, t0), ErrNotFound)
		_, err = s.GetInvocation(ctx, id)
		wantErr(t, "GetInvocation", err, ErrNotFound)
	})
}

func TestFinishInvocationTwiceRefused(t *testing.T) {
	bothBackends(t, testFinishInvocationTwiceRefused)
}

func testFinishInvocationTwiceRefused(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	inv := invocationIn(t, s, d.ID, InvocationDelivered)
	if err := s.FinishInvocation(ctx, inv.RequestID, []byte("first"), false, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	err := s.FinishInvocation(ctx, inv.RequestID, []byte("second"), true, t0.Add(2*time.Second))
	wantErr(t, "a second result", err, ErrIllegalTransition)
	if !strings.Contains(err.Error(), "invocation is failed") {
		t.Errorf("error %q does not say the invocation failed", err)
	}
	got := mustGetInvocation(t, s, inv.RequestID)
	if string(got.Result) != "first" || !got.FinishedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("the second result replaced the first: %+v", got)
	}
	if kinds := auditKindsFor(t, s, inv.RequestID); !reflect.DeepEqual(kinds,
		[]string{AuditInvocationQueued, AuditInvocationFailed}) {
		t.Fatalf("audit kinds %v", kinds)
	}
}

// A result that arrives after the queue TTL is refused whether or not the
// sweep has run yet; when it has not, the invocation is expired on the spot.
func TestFinishExpiredInvocationRefused(t *testing.T) {
	bothBackends(t, testFinishExpiredInvocationRefused)
}

func testFinishExpiredInvocationRefused(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)

	unswept := invocationIn(t, s, d.ID, InvocationDelivered)
	err := s.FinishInvocation(ctx, unswept.RequestID, []byte("late"), true, unswept.ExpiresAt)
	wantErr(t, "a result at the expiry", err, ErrIllegalTransition)
	if !strings.Contains(err.Error(), "expired") {
		t.Errorf("error %q does not say expired", err)
	}
	got := mustGetInvocation(t, s, unswept.RequestID)
	if got.State != InvocationExpired || got.Result != nil || !got.FinishedAt.Equal(unswept.ExpiresAt) {
		t.Fatalf("after a late result: %+v", got)
	}
	if kinds := auditKindsFor(t, s, unswept.RequestID); !reflect.DeepEqual(kinds,
		[]string{AuditInvocationQueued, AuditInvocationExpired}) {
		t.Fatalf("audit kinds %v", kinds)
	}

	swept := invocationIn(t, s, d.ID, InvocationQueued)
	if n, err := s.ExpireInvocations(ctx, swept.ExpiresAt); err != nil || n != 1 {
		t.Fatalf("ExpireInvocations = %d, %v; want 1", n, err)
	}
	// Even with a clock that says it is not expired yet.
	wantErr(t, "a result for an expired invocation",
		s.FinishInvocation(ctx, swept.RequestID, []byte("late"), true, t0), ErrIllegalTransition)
	_, err = s.MarkDelivered(ctx, swept.RequestID, t0)
	wantErr(t, "delivering an expired invocation", err, ErrIllegalTransition)
}

func TestExpireInvocations(t *testing.T) { bothBackends(t, testExpireInvocations) }

func testExpireInvocations(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	other, _ := pairedDevice(t, s)

	// Created at t0; each expires at t0 + ttl.
	add := func(dev identity.DeviceID, ttl time.Duration) Invocation {
		inv := testInvocation(t, dev, t0)
		inv.ExpiresAt = t0.Add(ttl)
		mustQueue(t, s, inv)
		return inv
	}
	queuedPast := add(d.ID, time.Minute)
	deliveredPast := add(other.ID, time.Minute)
	if _, err := s.MarkDelivered(ctx, deliveredPast.RequestID, t0); err != nil {
		t.Fatal(err)
	}
	atBoundary := add(d.ID, 10*time.Minute) // expires exactly at now
	future := add(d.ID, 10*time.Minute+time.Nanosecond)
	donePast := add(d.ID, time.Minute)
	if err := s.FinishInvocation(ctx, donePast.RequestID, []byte("r"), true, t0); err != nil {
		t.Fatal(err)
	}

	now := t0.Add(10 * time.Minute)
	n, err := s.ExpireInvocations(ctx, now)
	if err != nil || n != 3 {
		t.Fatalf("ExpireInvocations = %d, %v; want 3", n, err)
	}
	for _, tt := range []struct {
		inv  Invocation
		want InvocationState
	}{
		{queuedPast, InvocationExpired},
		{deliveredPast, InvocationExpired},
		{atBoundary, InvocationExpired},
		{future, InvocationQueued},
		{donePast, InvocationDone},
	} {
		got := mustGetInvocation(t, s, tt.inv.RequestID)
		if got.State != tt.want {
			t.Errorf("%s: state %s, want %s", tt.inv.RequestID, got.State, tt.want)
		}
		if tt.want == InvocationExpired && !got.FinishedAt.Equal(tt.inv.ExpiresAt) {
			t.Errorf("%s: finished at %v, want its expiry %v", tt.inv.RequestID, got.FinishedAt, tt.inv.ExpiresAt)
		}
	}

	events, err := s.ListAudit(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	expired := map[string]AuditEvent{}
	for _, e := range events {
		if e.Kind == AuditInvocationExpired {
			expired[e.RequestID] = e
		}
	}
	if len(expired) != 3 {
		t.Fatalf("%d invocation.expired audit rows, want 3: %+v", len(expired), expired)
	}
	for _, inv := range []Invocation{queuedPast, deliveredPast, atBoundary} {
		e, ok := expired[inv.RequestID]
		if !ok {
			t.Fatalf("no expiry audit row for %s", inv.RequestID)
		}
		if e.DeviceID != inv.DeviceID || !e.At.Equal(now) || !strings.Contains(e.Detail, inv.Capability) {
			t.Errorf("expiry audit row %+v", e)
		}
		if strings.Contains(e.Detail, string(inv.Args)) {
			t.Errorf("audit row %+v carries the arguments", e)
		}
	}

	if n, err := s.ExpireInvocations(ctx, now); err != nil || n != 0 {
		t.Fatalf("second ExpireInvocations = %d, %v; want 0", n, err)
	}

	// Sweep expires invocations too, alongside codes and requests.
	if _, _, err := s.Sweep(ctx, future.ExpiresAt); err != nil {
		t.Fatal(err)
	}
	if got := mustGetInvocation(t, s, future.RequestID); got.State != InvocationExpired {
		t.Fatalf("after Sweep: %s", got.State)
	}
	if kinds := auditKindsFor(t, s, future.RequestID); !reflect.DeepEqual(kinds,
		[]string{AuditInvocationQueued, AuditInvocationExpired}) {
		t.Fatalf("audit kinds after Sweep %v", kinds)
	}
}

func TestPendingInvocations(t *testing.T) { bothBackends(t, testPendingInvocations) }

func testPendingInvocations(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	other, _ := pairedDevice(t, s)

	mk := func(dev identity.DeviceID, created time.Time, ttl time.Duration) Invocation {
		inv := testInvocation(t, dev, created)
		inv.ExpiresAt = created.Add(ttl)
		mustQueue(t, s, inv)
		return inv
	}
	// Queued out of order: the list is by creation time.
	third := mk(d.ID, t0.Add(3*time.Second), time.Hour)
	first := mk(d.ID, t0.Add(1*time.Second), time.Hour)
	second := mk(d.ID, t0.Add(2*time.Second), time.Hour)
	if _, err := s.MarkDelivered(ctx, second.RequestID, t0.Add(4*time.Second)); err != nil {
		t.Fatal(err)
	}
	lapsed := mk(d.ID, t0, 5*time.Second) // past expiry, not swept
	done := mk(d.ID, t0, time.Hour)
	if err := s.FinishInvocation(ctx, done.RequestID, nil, true, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	swept := mk(d.ID, t0, 3*time.Second)
	if n, err := s.ExpireInvocations(ctx, t0.Add(4*time.Second)); err != nil || n != 1 {
		t.Fatalf("ExpireInvocations = %d, %v; want 1", n, err)
	}
	mk(other.ID, t0, time.Hour)

	got, err := s.PendingInvocations(ctx, d.ID, t0.Add(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{first.RequestID, second.RequestID, third.RequestID}
	if ids := requestIDs(got); !reflect.DeepEqual(ids, want) {
		t.Fatalf("pending %v, want %v (lapsed %s, done %s, swept %s)", ids, want, lapsed.RequestID, done.RequestID, swept.RequestID)
	}
	if got[1].State != InvocationDelivered || got[1].Attempts != 1 {
		t.Fatalf("delivered one listed as %+v", got[1])
	}
	// Listing changes nothing: the lapsed one is still queued until a sweep.
	if st := mustGetInvocation(t, s, lapsed.RequestID).State; st != InvocationQueued {
		t.Fatalf("lapsed invocation is %s after listing", st)
	}
	// Just before its expiry the lapsed one is still pending, and first by
	// creation time.
	got, err = s.PendingInvocations(ctx, d.ID, lapsed.ExpiresAt.Add(-time.Nanosecond))
	if err != nil {
		t.Fatal(err)
	}
	if ids := requestIDs(got); len(ids) != 4 || ids[0] != lapsed.RequestID {
		t.Fatalf("pending before the lapse %v", ids)
	}
	unknown, _ := newDevice(t)
	if got, err := s.PendingInvocations(ctx, unknown, t0); err != nil || len(got) != 0 {
		t.Fatalf("pending of an unknown device: %v, %v", got, err)
	}
}

// Equal creation times fall back to request ID order, and the list is
// bounded.
func TestPendingInvocationsBounded(t *testing.T) { bothBackends(t, testPendingInvocationsBounded) }

func testPendingInvocationsBounded(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	const n = MaxPendingInvocations + 5
	// Insert directly in one transaction: a thousand durable commits would
	// make this test slow without testing anything more.
	var ids []string
	err := s.update(ctx, func(tx *txn) error {
		ids = ids[:0]
		for range n {
			inv := testInvocation(t, d.ID, t0)
			ids = append(ids, inv.RequestID)
			if _, err := tx.ExecContext(ctx, `INSERT INTO invocations
				(request_id, device_id, capability, caller, created_at, expires_at, timeout_ns, state)
				VALUES (?, ?, ?, '', ?, ?, ?, 'queued')`, inv.RequestID, dbDeviceID(d.ID), inv.Capability,
				inv.CreatedAt.UnixNano(), inv.ExpiresAt.UnixNano(), int64(inv.Timeout)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.PendingInvocations(ctx, d.ID, t0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxPendingInvocations {
		t.Fatalf("%d pending, want %d", len(got), MaxPendingInvocations)
	}
	// The IDs were made in increasing order (same time, counter random part).
	if gotIDs := requestIDs(got); !reflect.DeepEqual(gotIDs, ids[:MaxPendingInvocations]) {
		t.Fatal("pending invocations with equal creation times are not in request ID order")
	}
}

// storeAtVersion makes a database as a program that knew only the first
// version migrations left it, on backend be; next is the name of the
// migration after. It returns where the database is and the old program's
// store.
func storeAtVersion(t *testing.T, be backend, version int, next string) (string, *Store) {
	t.Helper()
	where := be.fresh(t)
	d := sqliteDialect
	if be.name == postgresBackend.name {
		d = postgresDialect
	}
	ms, err := loadMigrations(migrationFiles, d.migrationsDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) <= version || ms[version].name != next {
		t.Fatalf("migrations %v, want %s after version %d", ms, next, version)
	}
	old, err := be.open(context.Background(), where, Options{Now: fixedClock, migrations: ms[:version]})
	if err != nil {
		t.Fatal(err)
	}
	return where, old
}

// A database created by a program that knew only migration 0001 is brought
// to the current version with its data intact.
func TestMigrateFromVersion1(t *testing.T) { bothBackends(t, testMigrateFromVersion1) }

func testMigrateFromVersion1(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	path, old := storeAtVersion(t, be, 1, "0002_invocations.sql")
	db := old.db
	// Version 1's rows, written as its program wrote them.
	d, pub := newDevice(t)
	if _, err := db.ExecContext(ctx, `INSERT INTO devices (id, public_key, name, platform, paired_at) VALUES (?, ?, 'old', 'linux', ?)`,
		d.String(), []byte(pub), t0.UnixNano()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO audit_log (at, kind, device_id, detail) VALUES (?, 'request.approved', ?, 'by hand')`,
		t0.UnixNano(), d.String()); err != nil {
		t.Fatal(err)
	}
	if hasRelation(t, old, "invocations") {
		t.Fatal("version 1 already has the invocations table")
	}
	auditBefore := []AuditEvent{{ID: 1, At: t0, Kind: AuditRequestApproved, DeviceID: d, Detail: "by hand", Count: 1}}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}

	s := be.openAt(t, path)
	defer s.Close()
	var version int
	if err := s.db.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&version); err != nil {
		t.Fatal(err)
	}
	if version != SchemaVersion() || version < 2 {
		t.Fatalf("schema version %d after Open, want %d (at least 2)", version, SchemaVersion())
	}
	if !hasRelation(t, s, "invocations_device_state") {
		t.Fatal("no (device_id, state) index")
	}
	if got, err := s.GetDevice(ctx, d); err != nil || got.ID != d {
		t.Fatalf("device after migrating: %+v, %v", got, err)
	}
	if auditAfter, err := s.ListAudit(ctx, 0); err != nil || !reflect.DeepEqual(auditAfter, auditBefore) {
		t.Fatalf("audit log changed by migrating: %+v (%v), want %+v", auditAfter, err, auditBefore)
	}
	inv := testInvocation(t, d, t0)
	mustQueue(t, s, inv)
	if got := mustGetInvocation(t, s, inv.RequestID); got.State != InvocationQueued {
		t.Fatalf("queued invocation after migrating: %+v", got)
	}
}

func BenchmarkQueueAndFinishInvocation(b *testing.B) {
	ctx := context.Background()
	s, _ := openTest(b)
	d, _ := pairedDevice(b, s)
	for b.Loop() {
		b.StopTimer()
		inv := testInvocation(b, d.ID, t0)
		b.StartTimer()
		if err := s.QueueInvocation(ctx, inv); err != nil {
			b.Fatal(err)
		}
		if _, err := s.MarkDelivered(ctx, inv.RequestID, t0); err != nil {
			b.Fatal(err)
		}
		if err := s.FinishInvocation(ctx, inv.RequestID, []byte("result"), true, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// CancelInvocation says what the call was, keeps what its caller is told,
// and audits it; a call past its expiry is expired, not cancelled.
func TestCancelInvocation(t *testing.T) { bothBackends(t, testCancelInvocation) }

func testCancelInvocation(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d, _ := pairedDevice(t, s)
	inv := invocationIn(t, s, d.ID, InvocationDelivered)
	was, got, err := s.CancelInvocation(ctx, inv.RequestID, []byte("told"), t0.Add(time.Second))
	if err != nil || was != InvocationDelivered || got.State != InvocationCancelled || string(got.Result) != "told" ||
		!got.FinishedAt.Equal(t0.Add(time.Second)) || got.Attempts != 1 {
		t.Fatalf("cancel = %s, %+v, %v", was, got, err)
	}
	if pending, err := s.PendingInvocations(ctx, d.ID, t0); err != nil || len(pending) != 0 {
		t.Fatalf("a cancelled call is still pending: %+v, %v", pending, err)
	}
	if kinds := auditKindsFor(t, s, inv.RequestID); !reflect.DeepEqual(kinds, []string{AuditInvocationQueued, AuditInvocationCancelled}) {
		t.Fatalf("audit kinds %v", kinds)
	}
	late := invocationIn(t, s, d.ID, InvocationQueued)
	_, _, err = s.CancelInvocation(ctx, late.RequestID, nil, late.ExpiresAt)
	wantErr(t, "cancelling an expired call", err, ErrIllegalTransition)
	if got := mustGetInvocation(t, s, late.RequestID); got.State != InvocationExpired {
		t.Fatalf("a call cancelled past its expiry is %s", got.State)
	}
	_, _, err = s.CancelInvocation(ctx, "01KJVKTCGR0000000000000000", nil, t0)
	wantErr(t, "cancelling an unknown call", err, ErrNotFound)
}

// ListInvocations filters by device and state, newest first, bounded.
func TestListInvocations(t *testing.T) { bothBackends(t, testListInvocations) }

func testListInvocations(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	s, _ := be.openTest(t)
	d1, _ := pairedDevice(t, s)
	d2, _ := pairedDevice(t, s)
	var all []Invocation // oldest first
	for i, st := range []InvocationState{InvocationQueued, InvocationDone, InvocationFailed, InvocationCancelled, InvocationDelivered} {
		dev := d1.ID
		if i%2 == 1 {
			dev = d2.ID
		}
		all = append(all, invocationIn(t, s, dev, st))
	}
	ids := func(list []Invocation) []string {
		var out []string
		for _, inv := range list {
			out = append(out, inv.RequestID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    InvocationFilter
		want []Invocation
	}{
		{"all", InvocationFilter{}, []Invocation{all[4], all[3], all[2], all[1], all[0]}},
		{"one device", InvocationFilter{DeviceID: d2.ID}, []Invocation{all[3], all[1]}},
		{"pending", InvocationFilter{States: []InvocationState{InvocationQueued, InvocationDelivered}}, []Invocation{all[4], all[0]}},
		{"failed of one device", InvocationFilter{DeviceID: d1.ID, States: []InvocationState{InvocationFailed}}, []Invocation{all[2]}},
		{"limit", InvocationFilter{Limit: 2}, []Invocation{all[4], all[3]}},
	} {
		got, err := s.ListInvocations(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ids(got), ids(tc.want)) {
			t.Errorf("%s: %v, want %v", tc.name, ids(got), ids(tc.want))
		}
	}
}

// Migration 0004 keeps the calls that ended before it, and tells the failed
// ones from the done ones by their audit rows.
func TestMigrateInvocationOutcomes(t *testing.T) { bothBackends(t, testMigrateInvocationOutcomes) }

func testMigrateInvocationOutcomes(t *testing.T, be backend) {
	t.Parallel()
	ctx := context.Background()
	path, old := storeAtVersion(t, be, 3, "0004_invocation_outcomes.sql")
	db := old.db
	d, _ := pairedDevice(t, old)
	ok, failed, queued := testInvocation(t, d.ID, t0), testInvocation(t, d.ID, t0), testInvocation(t, d.ID, t0)
	for _, inv := range []Invocation{ok, failed, queued} {
		mustQueue(t, old, inv)
	}
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE invocations SET state = 'done', result = ?, finished_at = 1 WHERE request_id = ?`, []any{[]byte{1}, ok.RequestID}},
		{`UPDATE invocations SET state = 'done', result = ?, finished_at = 1 WHERE request_id = ?`, []any{[]byte{2}, failed.RequestID}},
		{`INSERT INTO audit_log (at, kind, request_id) VALUES (1, 'invocation.done', ?)`, []any{ok.RequestID}},
		{`INSERT INTO audit_log (at, kind, request_id) VALUES (1, 'invocation.failed', ?)`, []any{failed.RequestID}},
	} {
		if _, err := db.ExecContext(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	s := be.openAt(t, path)
	defer s.Close()
	for id, want := range map[string]InvocationState{ok.RequestID: InvocationDone, failed.RequestID: InvocationFailed, queued.RequestID: InvocationQueued} {
		if got := mustGetInvocation(t, s, id); got.State != want || (want != InvocationQueued && len(got.Result) != 1) {
			t.Errorf("call %s after migrating: %+v, want %s", id, got, want)
		}
	}
	if _, _, err := s.CancelInvocation(ctx, queued.RequestID, nil, t0); err != nil {
		t.Fatalf("cancelling after migrating: %v", err)
	}
}
