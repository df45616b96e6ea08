package metrics

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

// exampleRegistry has one of everything, with known values.
func exampleRegistry() *Registry {
	r := NewRegistry()
	reqs := r.Counter("app_requests_total", "Requests handled.", "method", "code")
	reqs.With("POST", "500").Inc()
	reqs.With("GET", "200").Add(3)
	reqs.With("GET", "404").Inc()
	r.Counter("app_starts_total", "Times started.").With().Inc()
	r.Counter("app_bytes_total", "Bytes, in halves.").With().Add(1.5)
	r.Counter("app_errors_total", "Errors (none yet, so not written).", "kind")
	temp := r.Gauge("app_temperature_celsius", "Current temperature.").With()
	temp.Set(21.5)
	temp.Dec()
	r.Gauge("app_help_escaping", "Line one\nback\\slash \"quoted\".")
	r.GaugeFunc("app_up_seconds", "Seconds since start.", func() float64 { return 42 })
	r.CounterFunc("app_commits_total", "Commits, counted elsewhere.", func() float64 { return 7 })
	lat := r.Histogram("app_latency_seconds", "Latency.", []float64{0.25, 0.5, 1}, "path")
	for _, v := range []float64{2, 0.25, 0.375, 0.125} {
		lat.With("/a").Observe(v)
	}
	lat.With("/b")
	r.Gauge("app_labels", "Label escaping.", "v").With("a\\b\"c\nd").Set(1)
	return r
}

const exampleText = `# HELP app_bytes_total Bytes, in halves.
# TYPE app_bytes_total counter
app_bytes_total 1.5
# HELP app_commits_total Commits, counted elsewhere.
# TYPE app_commits_total counter
app_commits_total 7
# HELP app_help_escaping Line one\nback\\slash "quoted".
# TYPE app_help_escaping gauge
app_help_escaping 0
# HELP app_labels Label escaping.
# TYPE app_labels gauge
app_labels{v="a\\b\"c\nd"} 1
# HELP app_latency_seconds Latency.
# TYPE app_latency_seconds histogram
app_latency_seconds_bucket{path="/a",le="0.25"} 2
app_latency_seconds_bucket{path="/a",le="0.5"} 3
app_latency_seconds_bucket{path="/a",le="1"} 3
app_latency_seconds_bucket{path="/a",le="+Inf"} 4
app_latency_seconds_sum{path="/a"} 2.75
app_latency_seconds_count{path="/a"} 4
app_latency_seconds_bucket{path="/b",le="0.25"} 0
app_latency_seconds_bucket{path="/b",le="0.5"} 0
app_latency_seconds_bucket{path="/b",le="1"} 0
app_latency_seconds_bucket{path="/b",le="+Inf"} 0
app_latency_seconds_sum{path="/b"} 0
app_latency_seconds_count{path="/b"} 0
# HELP app_requests_total Requests handled.
# TYPE app_requests_total counter
app_requests_total{method="GET",code="200"} 3
app_requests_total{method="GET",code="404"} 1
app_requests_total{method="POST",code="500"} 1
# HELP app_starts_total Times started.
# TYPE app_starts_total counter
app_starts_total 1
# HELP app_temperature_celsius Current temperature.
# TYPE app_temperature_celsius gauge
app_temperature_celsius 20.5
# HELP app_up_seconds Seconds since start.
# TYPE app_up_seconds gauge
app_up_seconds 42
`

func TestWriteToExact(t *testing.T) {
	r := exampleRegistry()
	var b bytes.Buffer
	n, err := r.WriteTo(&b)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(b.Len()) {
		t.Errorf("WriteTo returned %d, wrote %d bytes", n, b.Len())
	}
	if got := b.String(); got != exampleText {
		t.Errorf("WriteTo wrote:\n%s\nwant:\n%s", got, exampleText)
	}
}

func TestEmptyRegistry(t *testing.T) {
	var b bytes.Buffer
	if n, err := NewRegistry().WriteTo(&b); n != 0 || err != nil || b.Len() != 0 {
		t.Fatalf("empty registry wrote %d bytes (%q), %v", n, b.String(), err)
	}
}

func TestWriteToError(t *testing.T) {
	want := errors.New("disk full")
	if _, err := exampleRegistry().WriteTo(failingWriter{want}); !errors.Is(err, want) {
		t.Fatalf("WriteTo to a failing writer: %v", err)
	}
}

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

// TestOutputParses reads the output back with an independent parser: every
// line is a comment or a well-formed sample of a declared family, label
// values unescape to what was set, and histogram buckets are cumulative.
func TestOutputParses(t *testing.T) {
	var b bytes.Buffer
	if _, err := exampleRegistry().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	var samples []sample
	sc := bufio.NewScanner(&b)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			types[name] = typ
			continue
		}
		if strings.HasPrefix(line, "# HELP ") {
			continue
		}
		s, err := parseSample(line)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		samples = append(samples, s)
	}
	if len(samples) != 22 {
		t.Errorf("parsed %d samples, want 22", len(samples))
	}
	var lastBucket float64
	for _, s := range samples {
		family := s.name
		if types[family] == "" {
			for _, suf := range []string{"_bucket", "_sum", "_count"} {
				if f, ok := strings.CutSuffix(s.name, suf); ok && types[f] == "histogram" {
					family = f
				}
			}
		}
		if types[family] == "" {
			t.Errorf("sample %s has no # TYPE line", s.name)
		}
		if s.name == "app_labels" && s.labels[0] != [2]string{"v", "a\\b\"c\nd"} {
			t.Errorf("app_labels label read back as %q", s.labels)
		}
		if strings.HasSuffix(s.name, "_bucket") {
			if le := s.labels[len(s.labels)-1]; le[0] != "le" {
				t.Errorf("bucket %v: le is not the last label", s.labels)
			} else if le[1] == "0.25" {
				lastBucket = 0
			}
			if s.value < lastBucket {
				t.Errorf("buckets not cumulative at %v: %v < %v", s.labels, s.value, lastBucket)
			}
			lastBucket = s.value
		}
	}
}

type sample struct {
	name   string
	labels [][2]string
	value  float64
}

// parseSample parses `name{label="value",...} value`, strictly.
func parseSample(line string) (sample, error) {
	var s sample
	i := 0
	for i < len(line) && isNameByte(line[i], i == 0, true) {
		i++
	}
	if i == 0 {
		return s, errors.New("no metric name")
	}
	s.name, line = line[:i], line[i:]
	if rest, ok := strings.CutPrefix(line, "{"); ok {
		line = rest
		for {
			j := 0
			for j < len(line) && isNameByte(line[j], j == 0, false) {
				j++
			}
			if j == 0 {
				return s, fmt.Errorf("no label name at %q", line)
			}
			name := line[:j]
			rest, ok := strings.CutPrefix(line[j:], `="`)
			if !ok {
				return s, fmt.Errorf("label %s: no =\" after the name", name)
			}
			value, n, err := unquoteLabelValue(rest)
			if err != nil {
				return s, fmt.Errorf("label %s: %w", name, err)
			}
			s.labels = append(s.labels, [2]string{name, value})
			line = rest[n:]
			if rest, ok := strings.CutPrefix(line, ","); ok {
				line = rest
				continue
			}
			if rest, ok := strings.CutPrefix(line, "}"); ok {
				line = rest
				break
			}
			return s, fmt.Errorf("expected , or } at %q", line)
		}
	}
	v, ok := strings.CutPrefix(line, " ")
	if !ok || v == "" || strings.ContainsAny(v, " \t") {
		return s, fmt.Errorf("expected one space and a value, got %q", line)
	}
	var err error
	switch v {
	case "+Inf":
		s.value = math.Inf(1)
	case "-Inf":
		s.value = math.Inf(-1)
	case "NaN":
		s.value = math.NaN()
	default:
		if s.value, err = strconv.ParseFloat(v, 64); err != nil || strings.ContainsAny(v, "xXpP_") || strings.EqualFold(v, "inf") {
			return s, fmt.Errorf("bad value %q", v)
		}
	}
	return s, nil
}

func isNameByte(c byte, first, colon bool) bool {
	return c == '_' || colon && c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || !first && '0' <= c && c <= '9'
}

// unquoteLabelValue reads an escaped label value up to its closing quote
// and returns it and the bytes consumed, quote included.
func unquoteLabelValue(s string) (string, int, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '"':
			return b.String(), i + 1, nil
		case '\n':
			return "", 0, errors.New("raw newline in label value")
		case '\\':
			i++
			if i == len(s) {
				return "", 0, errors.New("backslash at end")
			}
			switch s[i] {
			case '\\':
				b.WriteByte('\\')
			case '"':
				b.WriteByte('"')
			case 'n':
				b.WriteByte('\n')
			default:
				return "", 0, fmt.Errorf("unknown escape \\%c", s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, errors.New("no closing quote")
}

func TestParseSampleRejects(t *testing.T) {
	for _, line := range []string{
		``, `1abc 1`, `abc`, `abc  1`, `abc 1 2`, `abc{} 1`, `abc{a="b} 1`, `abc{a="b",} 1`,
		`abc{a=b} 1`, `abc{a="\x"} 1`, `abc{a="b"}1`, `abc 0x10`, `abc Inf`, `abc{1a="b"} 1`,
	} {
		if s, err := parseSample(line); err == nil {
			t.Errorf("parseSample(%q) = %+v, want an error", line, s)
		}
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0, "0"}, {1, "1"}, {-1, "-1"}, {0.5, "0.5"}, {1e6, "1e+06"}, {123456, "123456"},
		{0.0001, "0.0001"}, {1e-05, "1e-05"}, {math.Inf(1), "+Inf"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
	} {
		if got := formatFloat(tc.v); got != tc.want {
			t.Errorf("formatFloat(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestEscapeLabelValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"plain", "plain"},
		{`a\b`, `a\\b`},
		{`say "hi"`, `say \"hi\"`},
		{"two\nlines", `two\nlines`},
		{"tab\tstays", "tab\tstays"},
		{"ünïcödé ✓", "ünïcödé ✓"},
		{"bad\xffbyte", "bad\uFFFDbyte"},
		{"run\xf5\xc3of bad bytes", "run\uFFFDof bad bytes"},
	} {
		if got := escapeLabelValue(tc.in); got != tc.want {
			t.Errorf("escapeLabelValue(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// FuzzLabelValueEscaping: whatever a label value holds, it comes out as one
// line that unescapes to the value (invalid UTF-8 replaced by U+FFFD).
func FuzzLabelValueEscaping(f *testing.F) {
	for _, s := range []string{"", "a", `\`, `"`, "\n", `\n`, `\"`, "a\\b\"c\nd", "\xff", "ü\x80", "}", `",x="y`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		esc := escapeLabelValue(s)
		if strings.Contains(esc, "\n") || !utf8.ValidString(esc) {
			t.Fatalf("escape(%q) = %q: holds a newline or invalid UTF-8", s, esc)
		}
		got, n, err := unquoteLabelValue(esc + `"`)
		if err != nil || n != len(esc)+1 {
			t.Fatalf("unescaping %q: %q, consumed %d of %d: %v", esc, got, n, len(esc)+1, err)
		}
		if want := strings.ToValidUTF8(s, "\uFFFD"); got != want {
			t.Fatalf("round trip of %q gave %q, want %q", s, got, want)
		}
		line := string(appendSample(nil, "m", "", []string{"l"}, []string{s}, "", "", 1))
		p, err := parseSample(strings.TrimSuffix(line, "\n"))
		if err != nil || len(p.labels) != 1 || p.labels[0][1] != got || p.value != 1 {
			t.Fatalf("sample line %q parsed as %+v, %v", line, p, err)
		}
	})
}

// TestConcurrentUpdates updates every kind of metric from several
// goroutines, scraping meanwhile, and checks the exact totals.
func TestConcurrentUpdates(t *testing.T) {
	const workers, perWorker = 8, 2000
	r := NewRegistry()
	c := r.Counter("c_total", "c").With()
	cv := r.Counter("cv_total", "cv", "worker")
	g := r.Gauge("g", "g").With()
	h := r.Histogram("h_seconds", "h", []float64{0.25, 1}).With()
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			label := strconv.Itoa(w % 2)
			for range perWorker {
				c.Inc()
				c.Add(0.25)
				cv.With(label).Inc()
				g.Add(2)
				g.Dec()
				h.Observe(0.5)
			}
		})
	}
	scrapes := make(chan struct{})
	go func() {
		defer close(scrapes)
		for range 20 {
			if _, err := r.WriteTo(&bytes.Buffer{}); err != nil {
				t.Error(err)
			}
		}
	}()
	wg.Wait()
	<-scrapes
	const n = workers * perWorker
	if got, want := c.Value(), float64(n)*1.25; got != want {
		t.Errorf("counter = %v, want %v", got, want)
	}
	if got := cv.With("0").Value() + cv.With("1").Value(); got != n {
		t.Errorf("labelled counters sum to %v, want %v", got, n)
	}
	if got := g.Value(); got != n {
		t.Errorf("gauge = %v, want %v", got, n)
	}
	cum, sum, count := h.snapshot()
	if count != n || sum != n*0.5 || cum[0] != 0 || cum[1] != n || cum[2] != n {
		t.Errorf("histogram: buckets %v, sum %v, count %v; want [0 %d %d], %v, %d", cum, sum, count, n, n, n*0.5, n)
	}
}

func TestCounterRefusesDecrease(t *testing.T) {
	c := NewRegistry().Counter("x_total", "x").With()
	for _, v := range []float64{-1, math.NaN()} {
		if !panics(func() { c.Add(v) }) {
			t.Errorf("Add(%v) did not panic", v)
		}
	}
	c.Add(math.Inf(1))
	if !math.IsInf(c.Value(), 1) {
		t.Errorf("Add(+Inf): %v", c.Value())
	}
}

func TestRegistrationMistakesPanic(t *testing.T) {
	for name, f := range map[string]func(r *Registry){
		"same name twice":      func(r *Registry) { r.Counter("a_total", ""); r.Gauge("a_total", "") },
		"gauge func twice":     func(r *Registry) { r.Gauge("a", ""); r.GaugeFunc("a", "", func() float64 { return 0 }) },
		"clash with histogram": func(r *Registry) { r.Histogram("h", "", []float64{1}); r.Counter("h_count", "") },
		"histogram after clash": func(r *Registry) {
			r.Gauge("h_sum", "")
			r.Histogram("h", "", []float64{1})
		},
		"empty name":              func(r *Registry) { r.Counter("", "") },
		"name with dash":          func(r *Registry) { r.Counter("a-b", "") },
		"name starting digit":     func(r *Registry) { r.Gauge("1a", "") },
		"label with dash":         func(r *Registry) { r.Counter("a", "", "b-c") },
		"reserved label":          func(r *Registry) { r.Counter("a", "", "__x") },
		"label twice":             func(r *Registry) { r.Counter("a", "", "x", "x") },
		"le on a histogram":       func(r *Registry) { r.Histogram("a", "", []float64{1}, "le") },
		"no buckets":              func(r *Registry) { r.Histogram("a", "", nil) },
		"only +Inf":               func(r *Registry) { r.Histogram("a", "", []float64{math.Inf(1)}) },
		"buckets not increasing":  func(r *Registry) { r.Histogram("a", "", []float64{1, 1}) },
		"buckets decreasing":      func(r *Registry) { r.Histogram("a", "", []float64{2, 1}) },
		"NaN bucket":              func(r *Registry) { r.Histogram("a", "", []float64{math.NaN()}) },
		"nil gauge func":          func(r *Registry) { r.GaugeFunc("a", "", nil) },
		"nil counter func":        func(r *Registry) { r.CounterFunc("a_total", "", nil) },
		"too few label values":    func(r *Registry) { r.Counter("a", "", "x", "y").With("1") },
		"too many label values":   func(r *Registry) { r.Gauge("a", "", "x").With("1", "2") },
		"values without labels":   func(r *Registry) { r.Histogram("a", "", []float64{1}).With("1") },
		"bad exponential buckets": func(r *Registry) { ExponentialBuckets(1, 1, 3) },
	} {
		t.Run(name, func(t *testing.T) {
			if !panics(func() { f(NewRegistry()) }) {
				t.Error("did not panic")
			}
		})
	}
	// A failed registration leaves the name free.
	r := NewRegistry()
	if !panics(func() { r.Counter("ok_total", "", "bad-label") }) {
		t.Fatal("bad label accepted")
	}
	r.Counter("ok_total", "")
}

func TestHistogramTrailingInf(t *testing.T) {
	r := NewRegistry()
	r.Histogram("h", "h", []float64{1, math.Inf(1)}).With().Observe(5)
	var b bytes.Buffer
	r.WriteTo(&b)
	if strings.Count(b.String(), `le="+Inf"`) != 1 || !strings.Contains(b.String(), "h_bucket{le=\"1\"} 0\nh_bucket{le=\"+Inf\"} 1\n") {
		t.Fatalf("histogram with explicit +Inf:\n%s", b.String())
	}
}

func TestExponentialBuckets(t *testing.T) {
	got := ExponentialBuckets(0.001, 10, 4)
	want := []float64{0.001, 0.01, 0.1, 1}
	for i := range want {
		if math.Abs(got[i]-want[i]) > 1e-12 {
			t.Fatalf("ExponentialBuckets = %v, want %v", got, want)
		}
	}
}

func panics(f func()) (p bool) {
	defer func() { p = recover() != nil }()
	f()
	return false
}

func BenchmarkCounterInc(b *testing.B) {
	c := NewRegistry().Counter("c_total", "c").With()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			c.Inc()
		}
	})
}

func BenchmarkCounterVecWith(b *testing.B) {
	cv := NewRegistry().Counter("c_total", "c", "outcome")
	b.ReportAllocs()
	for b.Loop() {
		cv.With("ok").Inc()
	}
}

func BenchmarkHistogramObserve(b *testing.B) {
	h := NewRegistry().Histogram("h_seconds", "h", ExponentialBuckets(1e-4, 2, 19)).With()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			h.Observe(0.003)
		}
	})
}

func TestAppendWritesAfterTheRegistry(t *testing.T) {
	r := exampleRegistry()
	const extra = "# HELP go_goroutines Goroutines.\n# TYPE go_goroutines gauge\ngo_goroutines 7\n"
	r.Append(func(w io.Writer) error {
		_, err := io.WriteString(w, extra)
		return err
	})
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if got := b.String(); got != exampleText+extra {
		t.Fatalf("WriteTo wrote:\n%s\nwant the registry's metrics, then:\n%s", got, extra)
	}

	// A failing writer fails the scrape rather than serving half of it.
	broken := errors.New("cannot read /proc")
	r.Append(func(io.Writer) error { return broken })
	if _, err := r.WriteTo(&b); !errors.Is(err, broken) {
		t.Fatalf("WriteTo with a failing appended writer: %v", err)
	}
	rec := httptest.NewRecorder()
	r.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "cannot read /proc") {
		t.Fatalf("handler answered %d %q, want 500 naming the cause", rec.Code, rec.Body.String())
	}
}
