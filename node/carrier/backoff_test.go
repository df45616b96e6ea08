package carrier

import (
	"fmt"
	"testing"
	"time"
)

// seq returns a rand func cycling through vals.
func seq(vals ...float64) func() float64 {
	i := 0
	return func() float64 {
		v := vals[i%len(vals)]
		i++
		return v
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	// With rand just below 1 each delay is just below its ceiling.
	b := NewBackoff(seq(0.999999))
	wantCeil := []time.Duration{500 * time.Millisecond, time.Second, 2 * time.Second, 4 * time.Second,
		8 * time.Second, 16 * time.Second, 30 * time.Second, 30 * time.Second, 30 * time.Second}
	for i, ceil := range wantCeil {
		if got := b.Ceiling(); got != ceil {
			t.Errorf("attempt %d: ceiling %v, want %v", i, got, ceil)
		}
		d := b.Next()
		if d < ceil*99/100 || d >= ceil {
			t.Errorf("attempt %d: delay %v, want just below %v", i, d, ceil)
		}
	}
	// Many more attempts never pass the cap (no overflow).
	for range 1000 {
		if d := b.Next(); d >= BackoffCap || d < 0 {
			t.Fatalf("delay %v outside [0, %v)", d, BackoffCap)
		}
	}
}

func TestBackoffFullJitter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		r    float64
		want time.Duration
	}{
		{0, 0},
		{0.5, 250 * time.Millisecond},
		{0.25, 125 * time.Millisecond},
		{-1, 0},  // out of range: treated as 0
		{1.5, 0}, // out of range: treated as 0
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint(tt.r), func(t *testing.T) {
			t.Parallel()
			if got := NewBackoff(seq(tt.r)).Next(); got != tt.want {
				t.Errorf("first delay with rand %v = %v, want %v", tt.r, got, tt.want)
			}
		})
	}
}

func TestBackoffReset(t *testing.T) {
	t.Parallel()
	b := NewBackoff(seq(0.5))
	for range 5 {
		b.Next()
	}
	b.SessionEnded(StableAfter - time.Second)
	if got := b.Ceiling(); got != 16*time.Second {
		t.Errorf("after a short session the ceiling is %v, want 16s", got)
	}
	b.SessionEnded(StableAfter)
	if got := b.Next(); got != 250*time.Millisecond {
		t.Errorf("after a stable minute the delay is %v, want 250ms", got)
	}
	b.Next()
	b.Reset()
	if got := b.Ceiling(); got != BackoffStart {
		t.Errorf("after Reset the ceiling is %v", got)
	}
	if NewBackoff(nil).Next() >= BackoffStart {
		t.Error("default rand out of range")
	}
}
