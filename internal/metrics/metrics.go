// Package metrics is a small Prometheus registry: counters, gauges, gauges
// sampled at scrape time and histograms, each optionally with labels,
// written in the Prometheus text exposition format 0.0.4 and served on a
// loopback-only HTTP endpoint (Serve).
//
// Updates are cheap enough for hot paths: counters and gauges are atomics,
// a histogram takes one uncontended mutex per observation. A Vec's With
// looks its child up under a read lock; callers on hot paths keep the child
// it returns. Children are never removed, so label values must come from a
// small, bounded set — never from peer-controlled strings.
//
// Registration mistakes are programming errors and panic: an invalid metric
// or label name, a name registered twice (or clashing with a histogram's
// _bucket, _sum or _count series), badly ordered histogram buckets, or a
// With call with the wrong number of label values.
//
// It owns metric bookkeeping and the /metrics endpoint only, uses nothing
// beyond the standard library, and must not import anything of this module.
//
// It is kept instead of prometheus/client_golang's registry and promhttp
// for two reasons: Serve refuses any address that is not loopback, because
// the endpoint has no authentication and the library's handler would serve
// wherever it is mounted; and the gateway's metrics are a handful of
// counters with fixed label sets, which this covers in one file with no
// dependencies. What the library does better — the standard go_* and
// process_* series, read from the runtime and the OS on each platform — is
// added with Append rather than written again here.
package metrics

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Registry holds metrics and writes them out. The zero value is not usable;
// call NewRegistry.
type Registry struct {
	mu sync.Mutex
	// families (by name) and series (every sample name in use, for clash
	// checks) are guarded by mu.
	families map[string]family
	series   map[string]bool
	// appended are the writers given to Append, guarded by mu.
	appended []func(io.Writer) error
}

// Append adds write, called at every scrape after the registry's own
// metrics, to write further metrics in the text format 0.0.4. Their names
// must not clash with the registry's; a failing write ends that scrape's
// output with an error.
func (r *Registry) Append(write func(io.Writer) error) {
	if write == nil {
		panic("metrics: Append(nil)")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.appended = append(r.appended, write)
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{families: map[string]family{}, series: map[string]bool{}}
}

// family is one registered metric.
type family interface {
	describe() *desc
	// appendSamples appends the family's sample lines to b.
	appendSamples(b []byte) []byte
}

// desc describes a family.
type desc struct {
	name, help, typ string
	labelNames      []string
}

// register adds f under d.name, panicking on any registration mistake.
func (r *Registry) register(d *desc, f family, suffixes ...string) {
	if !validMetricName(d.name) {
		panic(fmt.Sprintf("metrics: invalid metric name %q", d.name))
	}
	seen := map[string]bool{}
	for _, l := range d.labelNames {
		switch {
		case !validLabelName(l):
			panic(fmt.Sprintf("metrics: %s: invalid label name %q", d.name, l))
		case seen[l]:
			panic(fmt.Sprintf("metrics: %s: label %q given twice", d.name, l))
		case d.typ == "histogram" && l == "le":
			panic(fmt.Sprintf("metrics: %s: label \"le\" is reserved for histogram buckets", d.name))
		}
		seen[l] = true
	}
	names := []string{d.name}
	for _, s := range suffixes {
		names = append(names, d.name+s)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, n := range names {
		if r.series[n] {
			panic(fmt.Sprintf("metrics: %s registered twice (or clashes with another metric's series)", n))
		}
	}
	for _, n := range names {
		r.series[n] = true
	}
	r.families[d.name] = f
}

// validMetricName reports whether s matches [a-zA-Z_:][a-zA-Z0-9_:]*.
func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c == ':' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// validLabelName reports whether s matches [a-zA-Z_][a-zA-Z0-9_]* and does
// not start with "__" (reserved for Prometheus' own use).
func validLabelName(s string) bool {
	if s == "" || strings.HasPrefix(s, "__") {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// WriteTo writes every metric in the Prometheus text exposition format
// 0.0.4, sorted by name (a labelled metric with no children yet is left
// out), then what the writers given to Append write.
// Gauge functions are called here, without the registry's lock held.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	r.mu.Lock()
	names := make([]string, 0, len(r.families))
	for n := range r.families {
		names = append(names, n)
	}
	fams := make([]family, 0, len(names))
	sort.Strings(names)
	for _, n := range names {
		fams = append(fams, r.families[n])
	}
	appended := slices.Clone(r.appended)
	r.mu.Unlock()

	var buf bytes.Buffer
	var samples []byte
	for _, f := range fams {
		samples = f.appendSamples(samples[:0])
		if len(samples) == 0 {
			continue
		}
		d := f.describe()
		buf.WriteString("# HELP ")
		buf.WriteString(d.name)
		buf.WriteByte(' ')
		buf.WriteString(escapeHelp(d.help))
		buf.WriteString("\n# TYPE ")
		buf.WriteString(d.name)
		buf.WriteByte(' ')
		buf.WriteString(d.typ)
		buf.WriteByte('\n')
		buf.Write(samples)
	}
	for _, write := range appended {
		if err := write(&buf); err != nil {
			return 0, fmt.Errorf("writing appended metrics: %w", err)
		}
	}
	n, err := w.Write(buf.Bytes())
	return int64(n), err
}

// vec holds the children of a labelled metric, one per distinct tuple of
// label values.
type vec[T any] struct {
	desc     *desc
	newChild func() *T

	mu sync.RWMutex
	// children is guarded by mu, keyed by labelKey of the values.
	children map[string]*child[T]
}

type child[T any] struct {
	values []string
	m      *T
}

func newVec[T any](d *desc, newChild func() *T) *vec[T] {
	v := &vec[T]{desc: d, newChild: newChild, children: map[string]*child[T]{}}
	if len(d.labelNames) == 0 {
		// An unlabelled metric exists from the start, so it reads 0
		// before its first update.
		v.with(nil)
	}
	return v
}

// with returns the child for values, creating it on first use.
func (v *vec[T]) with(values []string) *T {
	if len(values) != len(v.desc.labelNames) {
		panic(fmt.Sprintf("metrics: %s has %d labels %q, With got %d values", v.desc.name, len(v.desc.labelNames), v.desc.labelNames, len(values)))
	}
	var stack [128]byte
	key := labelKey(stack[:0], values)
	v.mu.RLock()
	c, ok := v.children[string(key)]
	v.mu.RUnlock()
	if ok {
		return c.m
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if c, ok := v.children[string(key)]; ok {
		return c.m
	}
	c = &child[T]{values: slices.Clone(values), m: v.newChild()}
	v.children[string(key)] = c
	return c.m
}

// sorted returns the children ordered by their label values.
func (v *vec[T]) sorted() []*child[T] {
	v.mu.RLock()
	cs := make([]*child[T], 0, len(v.children))
	for _, c := range v.children {
		cs = append(cs, c)
	}
	v.mu.RUnlock()
	slices.SortFunc(cs, func(a, b *child[T]) int { return slices.Compare(a.values, b.values) })
	return cs
}

// labelKey encodes values unambiguously: each is prefixed by its length.
func labelKey(b []byte, values []string) []byte {
	for _, s := range values {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	return b
}

// floatBits is a float64 updated atomically.
type floatBits struct{ bits atomic.Uint64 }

func (f *floatBits) load() float64   { return math.Float64frombits(f.bits.Load()) }
func (f *floatBits) store(v float64) { f.bits.Store(math.Float64bits(v)) }
func (f *floatBits) add(v float64) {
	for {
		old := f.bits.Load()
		if f.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+v)) {
			return
		}
	}
}

// Counter is a value that only goes up.
type Counter struct {
	// Whole increments go to n (one atomic add, no retry loop under
	// contention); fractional ones to frac.
	n    atomic.Uint64
	frac floatBits
}

// Inc adds 1.
func (c *Counter) Inc() { c.n.Add(1) }

// Add adds v, which must not be negative (or NaN): a counter that goes down
// is a programming error, and Add panics.
func (c *Counter) Add(v float64) {
	if !(v >= 0) {
		panic(fmt.Sprintf("metrics: counter decreased by %v", v))
	}
	if v < 1<<53 && v == math.Trunc(v) {
		c.n.Add(uint64(v))
		return
	}
	c.frac.add(v)
}

// Value reports the counter's current value.
func (c *Counter) Value() float64 { return float64(c.n.Load()) + c.frac.load() }

// CounterVec is a counter with labels.
type CounterVec struct{ v *vec[Counter] }

// Counter registers a counter (its name should end in _total) and returns
// it; without labelNames, With() takes no values.
func (r *Registry) Counter(name, help string, labelNames ...string) *CounterVec {
	d := &desc{name: name, help: help, typ: "counter", labelNames: slices.Clone(labelNames)}
	cv := &CounterVec{v: newVec(d, func() *Counter { return new(Counter) })}
	r.register(d, cv)
	return cv
}

// With returns the counter for the label values, in the order the label
// names were registered. It panics when the count of values is wrong.
func (cv *CounterVec) With(labelValues ...string) *Counter { return cv.v.with(labelValues) }

func (cv *CounterVec) describe() *desc { return cv.v.desc }

func (cv *CounterVec) appendSamples(b []byte) []byte {
	for _, c := range cv.v.sorted() {
		b = appendSample(b, cv.v.desc.name, "", cv.v.desc.labelNames, c.values, "", "", c.m.Value())
	}
	return b
}

// Gauge is a value that goes up and down.
type Gauge struct{ v floatBits }

// Set sets the gauge to v.
func (g *Gauge) Set(v float64) { g.v.store(v) }

// Inc adds 1.
func (g *Gauge) Inc() { g.v.add(1) }

// Dec subtracts 1.
func (g *Gauge) Dec() { g.v.add(-1) }

// Add adds v, which may be negative.
func (g *Gauge) Add(v float64) { g.v.add(v) }

// Value reports the gauge's current value.
func (g *Gauge) Value() float64 { return g.v.load() }

// GaugeVec is a gauge with labels.
type GaugeVec struct{ v *vec[Gauge] }

// Gauge registers a gauge and returns it; without labelNames, With() takes
// no values.
func (r *Registry) Gauge(name, help string, labelNames ...string) *GaugeVec {
	d := &desc{name: name, help: help, typ: "gauge", labelNames: slices.Clone(labelNames)}
	gv := &GaugeVec{v: newVec(d, func() *Gauge { return new(Gauge) })}
	r.register(d, gv)
	return gv
}

// With returns the gauge for the label values, in the order the label names
// were registered. It panics when the count of values is wrong.
func (gv *GaugeVec) With(labelValues ...string) *Gauge { return gv.v.with(labelValues) }

func (gv *GaugeVec) describe() *desc { return gv.v.desc }

func (gv *GaugeVec) appendSamples(b []byte) []byte {
	for _, c := range gv.v.sorted() {
		b = appendSample(b, gv.v.desc.name, "", gv.v.desc.labelNames, c.values, "", "", c.m.Value())
	}
	return b
}

// gaugeFunc is a series read from a function at each scrape: a gauge's,
// or a counter's (CounterFunc).
type gaugeFunc struct {
	desc *desc
	f    func() float64
}

// GaugeFunc registers a gauge whose value is f's answer at each scrape. f
// must be safe to call from any goroutine and should be quick.
func (r *Registry) GaugeFunc(name, help string, f func() float64) {
	if f == nil {
		panic(fmt.Sprintf("metrics: %s: nil gauge function", name))
	}
	d := &desc{name: name, help: help, typ: "gauge"}
	r.register(d, &gaugeFunc{desc: d, f: f})
}

// CounterFunc registers a counter whose value is f's answer at each
// scrape, for a count kept elsewhere; f must never go down, must be safe
// to call from any goroutine and should be quick.
func (r *Registry) CounterFunc(name, help string, f func() float64) {
	if f == nil {
		panic(fmt.Sprintf("metrics: %s: nil counter function", name))
	}
	d := &desc{name: name, help: help, typ: "counter"}
	r.register(d, &gaugeFunc{desc: d, f: f})
}

func (g *gaugeFunc) describe() *desc { return g.desc }

func (g *gaugeFunc) appendSamples(b []byte) []byte {
	return appendSample(b, g.desc.name, "", nil, nil, "", "", g.f())
}

// Histogram counts observations into buckets.
type Histogram struct {
	upper []float64 // shared with the vec; read only

	mu sync.Mutex
	// counts (per bucket, not cumulative; the last is +Inf), sum and count
	// are guarded by mu, so a scrape sees them consistent.
	counts []uint64
	sum    float64
	count  uint64
}

// Observe records v in the first bucket whose upper bound is at least v.
func (h *Histogram) Observe(v float64) {
	i := sort.SearchFloat64s(h.upper, v) // == len(upper) means +Inf
	h.mu.Lock()
	h.counts[i]++
	h.sum += v
	h.count++
	h.mu.Unlock()
}

// snapshot returns cumulative bucket counts (the last is +Inf), the sum and
// the count.
func (h *Histogram) snapshot() ([]uint64, float64, uint64) {
	h.mu.Lock()
	cum := slices.Clone(h.counts)
	sum, count := h.sum, h.count
	h.mu.Unlock()
	for i := 1; i < len(cum); i++ {
		cum[i] += cum[i-1]
	}
	return cum, sum, count
}

// HistogramVec is a histogram with labels.
type HistogramVec struct {
	v     *vec[Histogram]
	upper []float64
	// les are the upper bounds formatted for the le label, +Inf last.
	les []string
}

// Histogram registers a histogram with the given bucket upper bounds, which
// must be finite and strictly increasing (the +Inf bucket is implicit; a
// trailing +Inf is accepted and dropped). Without labelNames, With() takes
// no values.
func (r *Registry) Histogram(name, help string, buckets []float64, labelNames ...string) *HistogramVec {
	upper := slices.Clone(buckets)
	if n := len(upper); n > 0 && math.IsInf(upper[n-1], +1) {
		upper = upper[:n-1]
	}
	if len(upper) == 0 {
		panic(fmt.Sprintf("metrics: %s: a histogram needs at least one finite bucket", name))
	}
	for i, u := range upper {
		if math.IsNaN(u) || math.IsInf(u, 0) || i > 0 && u <= upper[i-1] {
			panic(fmt.Sprintf("metrics: %s: buckets must be finite and strictly increasing, got %v", name, buckets))
		}
	}
	les := make([]string, 0, len(upper)+1)
	for _, u := range upper {
		les = append(les, formatFloat(u))
	}
	les = append(les, "+Inf")
	d := &desc{name: name, help: help, typ: "histogram", labelNames: slices.Clone(labelNames)}
	hv := &HistogramVec{upper: upper, les: les}
	hv.v = newVec(d, func() *Histogram {
		return &Histogram{upper: upper, counts: make([]uint64, len(upper)+1)}
	})
	r.register(d, hv, "_bucket", "_sum", "_count")
	return hv
}

// With returns the histogram for the label values, in the order the label
// names were registered. It panics when the count of values is wrong.
func (hv *HistogramVec) With(labelValues ...string) *Histogram { return hv.v.with(labelValues) }

func (hv *HistogramVec) describe() *desc { return hv.v.desc }

func (hv *HistogramVec) appendSamples(b []byte) []byte {
	d := hv.v.desc
	for _, c := range hv.v.sorted() {
		cum, sum, count := c.m.snapshot()
		for i, n := range cum {
			b = appendSample(b, d.name, "_bucket", d.labelNames, c.values, "le", hv.les[i], float64(n))
		}
		b = appendSample(b, d.name, "_sum", d.labelNames, c.values, "", "", sum)
		b = appendSample(b, d.name, "_count", d.labelNames, c.values, "", "", float64(count))
	}
	return b
}

// ExponentialBuckets returns count bucket bounds: start, start*factor, …
func ExponentialBuckets(start, factor float64, count int) []float64 {
	if start <= 0 || factor <= 1 || count < 1 {
		panic(fmt.Sprintf("metrics: ExponentialBuckets(%v, %v, %d): need start > 0, factor > 1, count >= 1", start, factor, count))
	}
	b := make([]float64, count)
	for i := range b {
		b[i] = start
		start *= factor
	}
	return b
}

// appendSample appends one line: name+suffix{labels[,extra]} value.
func appendSample(b []byte, name, suffix string, labelNames, labelValues []string, extraName, extraValue string, v float64) []byte {
	b = append(b, name...)
	b = append(b, suffix...)
	if len(labelNames) > 0 || extraName != "" {
		b = append(b, '{')
		for i, l := range labelNames {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, l, labelValues[i])
		}
		if extraName != "" {
			if len(labelNames) > 0 {
				b = append(b, ',')
			}
			b = appendLabel(b, extraName, extraValue)
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	b = append(b, formatFloat(v)...)
	return append(b, '\n')
}

func appendLabel(b []byte, name, value string) []byte {
	b = append(b, name...)
	b = append(b, '=', '"')
	b = appendEscapedLabelValue(b, value)
	return append(b, '"')
}

// appendEscapedLabelValue appends s as the text format wants it inside
// double quotes: backslash, double quote and newline escaped as \\, \" and
// \n. Each run of bytes that are not valid UTF-8 becomes one U+FFFD (as
// with strings.ToValidUTF8), so the output always is valid.
func appendEscapedLabelValue(b []byte, s string) []byte {
	invalid := false // the previous byte was part of an invalid run
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			invalid = false
			switch c {
			case '\\':
				b = append(b, '\\', '\\')
			case '"':
				b = append(b, '\\', '"')
			case '\n':
				b = append(b, '\\', 'n')
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r != utf8.RuneError || size != 1:
			b = append(b, s[i:i+size]...)
			invalid = false
		case !invalid:
			b = utf8.AppendRune(b, utf8.RuneError)
			invalid = true
		}
		i += size
	}
	return b
}

// escapeLabelValue is appendEscapedLabelValue for a string.
func escapeLabelValue(s string) string { return string(appendEscapedLabelValue(nil, s)) }

// escapeHelp escapes HELP text: backslash and newline only.
func escapeHelp(s string) string {
	if !strings.ContainsAny(s, "\\\n") && utf8.ValidString(s) {
		return s
	}
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.NewReplacer(`\`, `\\`, "\n", `\n`).Replace(s)
}

// formatFloat writes v as Prometheus does: shortest round-tripping form,
// with +Inf, -Inf and NaN spelled out.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
