package bench

import (
	"strings"
	"testing"
	"time"

	"github.com/palyra/palyra-go/internal/testpg"
)

// forward and revocation, briefly, on a private PostgreSQL: every figure
// is there with its baseline and ratio, each positive, and revocation's
// least is no more than its median, its median no more than its greatest.
func TestClusterPhases(t *testing.T) {
	t.Parallel()
	db := testpg.New(t)
	opts := Defaults
	opts.Phases = []string{PhaseForward, PhaseRevocation}
	opts.Reps, opts.Calls, opts.Revocations = 1, 50, 3
	opts.Database, opts.Timeout = db.URL, 3*time.Minute
	r, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatal(err)
	}
	got := r.JSON()
	for _, figure := range []string{"forward_invoke_p50_us", "forward_invoke_p99_us", "revocation_min_ms", "revocation_median_ms", "revocation_max_ms"} {
		unit := figure[strings.LastIndexByte(figure, '_'):]
		for _, key := range []string{figure, "baseline_" + figure, "ratio_" + strings.TrimSuffix(figure, unit)} {
			if v, ok := got[key]; !ok || v <= 0 {
				t.Errorf("%s is %v (present: %v) in %v", key, v, ok, got)
			}
		}
	}
	if lo, mid, hi := got["revocation_min_ms"], got["revocation_median_ms"], got["revocation_max_ms"]; lo > mid || mid > hi {
		t.Errorf("revocation: least %v, median %v, greatest %v ms", lo, mid, hi)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "forwarded A → B → node") || !strings.Contains(table.String(), "revocation through one gateway until the other closed the session") {
		t.Errorf("the table does not say what it measured:\n%s", table.String())
	}
}

// The cluster phases refuse to run without a PostgreSQL database, naming
// the flag that gives one.
func TestClusterPhasesNeedDatabase(t *testing.T) {
	t.Parallel()
	for _, p := range []string{PhaseForward, PhaseRevocation} {
		opts := Defaults
		opts.Phases = []string{PhaseLatency, p}
		err := opts.Validate()
		if err == nil || !strings.Contains(err.Error(), "phase "+p) || !strings.Contains(err.Error(), "--database postgres://") {
			t.Errorf("phase %s without a database: %v", p, err)
		}
		opts.Database = "/var/lib/palyra/gateway.db"
		if err := opts.Validate(); err == nil || !strings.Contains(err.Error(), "--database must be a postgres:// URL") {
			t.Errorf("phase %s with a file for a database: %v", p, err)
		}
	}
}
