package gateway_test

import (
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/palyra/palyra-go/gateway"
)

// TestMetricsHaveGoAndProcessSeries: the gateway's metrics endpoint serves
// the standard go_* and process_* series beside its own, with values that
// fit this test process, and the whole page parses as one exposition (a
// name given twice would fail here).
func TestMetricsHaveGoAndProcessSeries(t *testing.T) {
	t.Parallel()
	rg := startGateway(t, t.TempDir(), "127.0.0.1:0", nil, func(c *gateway.Config) { c.MetricsListen = "127.0.0.1:0" })
	body := metricsText(t, rg)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("the metrics page does not parse: %v\n%s", err, body)
	}
	value := func(name string) float64 {
		t.Helper()
		f, ok := families[name]
		if !ok || len(f.GetMetric()) != 1 {
			t.Fatalf("metrics lack %s:\n%s", name, body)
		}
		m := f.GetMetric()[0]
		switch f.GetType() {
		case dto.MetricType_GAUGE:
			return m.GetGauge().GetValue()
		case dto.MetricType_COUNTER:
			return m.GetCounter().GetValue()
		}
		t.Fatalf("%s has type %s", name, f.GetType())
		return 0
	}
	if _, ok := families["palyra_connected_nodes"]; !ok {
		t.Errorf("the gateway's own metrics are missing:\n%s", body)
	}
	// A running gateway has its listeners' and the test's goroutines.
	if g := value("go_goroutines"); g < 2 || g > 1e6 {
		t.Errorf("go_goroutines = %v", g)
	}
	if heap := value("go_memstats_heap_alloc_bytes"); heap < 1<<10 || heap > 1<<36 {
		t.Errorf("go_memstats_heap_alloc_bytes = %v", heap)
	}
	if _, ok := families["go_gc_duration_seconds"]; !ok {
		t.Error("metrics lack go_gc_duration_seconds")
	}
	if runtime.GOOS != "linux" {
		return // the process series below are read from /proc here
	}
	if rss := value("process_resident_memory_bytes"); rss < 1<<20 || rss > 1<<36 {
		t.Errorf("process_resident_memory_bytes = %v, want between 1 MiB and 64 GiB", rss)
	}
	// The gateway holds its SQLite store and listening sockets open.
	if fds := value("process_open_fds"); fds < 5 || fds > value("process_max_fds") {
		t.Errorf("process_open_fds = %v (max %v)", fds, value("process_max_fds"))
	}
	if cpu := value("process_cpu_seconds_total"); cpu <= 0 {
		t.Errorf("process_cpu_seconds_total = %v", cpu)
	}
	// The test binary started before this test, and not days ago.
	start := time.Unix(int64(value("process_start_time_seconds")), 0)
	if now := time.Now(); start.After(now) || now.Sub(start) > 24*time.Hour {
		t.Errorf("process_start_time_seconds = %v, now %v (pid %d)", start, now, os.Getpid())
	}
}
