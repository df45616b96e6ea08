package gateway

import (
	"strings"
	"testing"
	"time"
)

// resolved is what the limits say, flattened for comparison.
type resolved struct {
	handshakeTimeout, idleTimeout              time.Duration
	unauthenticated, perSource                 int
	quicHandshakes, quicPerSource, quicRetryAt int
}

func flatten(l limits) resolved {
	return resolved{l.handshakeTimeout, l.idleTimeout, l.unauthenticated, l.perSource,
		l.quic.MaxHandshakes, l.quic.MaxHandshakesPerSource, l.quic.RetryThreshold}
}

func TestResolveLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		cfg       Config
		fileLimit uint64
		want      resolved
		err       string
	}{
		{
			name: "the defaults", fileLimit: 20000,
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second, unauthenticated: 1024, perSource: 64, quicHandshakes: 512, quicPerSource: 32, quicRetryAt: 256},
		},
		{
			name: "the defaults under a low open-file limit", fileLimit: 1024,
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second, unauthenticated: 384, perSource: 24, quicHandshakes: 512, quicPerSource: 32, quicRetryAt: 256},
		},
		{
			name: "caps asked for", fileLimit: 20000,
			cfg: Config{HandshakeTimeout: 3 * time.Second, IdleTimeout: time.Second, MaxUnauthenticatedConns: 1500,
				MaxUnauthenticatedConnsPerSource: 1000, MaxQUICHandshakes: 4000, QUICRetryThreshold: 100},
			want: resolved{handshakeTimeout: 3 * time.Second, idleTimeout: time.Second, unauthenticated: 1500, perSource: 1000, quicHandshakes: 4000, quicPerSource: 250, quicRetryAt: 100},
		},
		{
			name: "no caps", fileLimit: 20000,
			cfg:  Config{MaxUnauthenticatedConns: -1, MaxQUICHandshakes: -1, QUICRetryThreshold: -1},
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second},
		},
		{
			name: "no caps in all, a share per source", fileLimit: 20000,
			cfg:  Config{MaxUnauthenticatedConns: -1, MaxUnauthenticatedConnsPerSource: 10, MaxQUICHandshakes: -1, QUICRetryThreshold: 5},
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second, perSource: 10, quicHandshakes: 0, quicPerSource: 0, quicRetryAt: 5},
		},
		{
			name: "small caps keep a share of one", fileLimit: 20000,
			cfg:  Config{MaxUnauthenticatedConns: 3, MaxQUICHandshakes: 2},
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second, unauthenticated: 3, perSource: 1, quicHandshakes: 2, quicPerSource: 1, quicRetryAt: 1},
		},
		{
			name: "more than the open files allow", fileLimit: 20000, cfg: Config{MaxUnauthenticatedConns: 10000},
			err: "gateway: a cap of 10000 unauthenticated TCP connections does not fit the open-file limit (ulimit -n) of 20000: at most 9872",
		},
		{
			name: "one source could take every slot", fileLimit: 20000,
			cfg: Config{MaxUnauthenticatedConns: 100, MaxUnauthenticatedConnsPerSource: 100},
			err: "gateway: a cap of 100 unauthenticated TCP connections per source is not below the cap of 100 in all",
		},
		{
			name: "QUIC handshakes without a cap per source", fileLimit: 20000,
			cfg:  Config{MaxQUICHandshakesPerSource: -1},
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second, unauthenticated: 1024, perSource: 64, quicHandshakes: 512, quicPerSource: 0, quicRetryAt: 256},
		},
		{
			name: "a QUIC cap per source asked for", fileLimit: 20000,
			cfg:  Config{MaxQUICHandshakes: 1000, MaxQUICHandshakesPerSource: 900},
			want: resolved{handshakeTimeout: 10 * time.Second, idleTimeout: 20 * time.Second, unauthenticated: 1024, perSource: 64, quicHandshakes: 1000, quicPerSource: 900, quicRetryAt: 500},
		},
		{
			name: "one source could take every QUIC slot", fileLimit: 20000,
			cfg: Config{MaxQUICHandshakes: 100, MaxQUICHandshakesPerSource: 100},
			err: "gateway: a cap of 100 QUIC handshakes per source is not below the cap of 100 in all",
		},
		{
			name: "a Retry threshold at the cap", fileLimit: 20000,
			cfg: Config{MaxQUICHandshakes: 100, QUICRetryThreshold: 100},
			err: "gateway: a QUIC Retry threshold of 100 handshakes is not below the cap of 100 handshakes in progress",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := resolveLimits(tt.cfg, tt.fileLimit)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("resolveLimits: %+v, %v; want an error with %q", got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.quic.HandshakeTimeout != 5*time.Second {
				t.Errorf("QUIC handshake timeout %v", got.quic.HandshakeTimeout)
			}
			if flatten(got) != tt.want {
				t.Errorf("resolveLimits = %+v, want %+v", flatten(got), tt.want)
			}
		})
	}
}
