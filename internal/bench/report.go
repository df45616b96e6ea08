package bench

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured quantity, one value per repetition.
type Figure struct {
	// Key names it in JSON: the figure's name with its unit as suffix
	// (_us, _ms, _per_s, _bytes), "baseline_" before the raw quic-go or
	// grpc-go figure it is measured beside, "ratio_" before the ratio of
	// the two.
	Key string
	// Label says what it is, for the table.
	Label  string
	Values []float64
}

// Median, Min and Max summarise the repetitions.
func (f Figure) Median() float64 {
	v := slices.Sorted(slices.Values(f.Values))
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// Min is the least repetition.
func (f Figure) Min() float64 { return slices.Min(f.Values) }

// Max is the greatest repetition.
func (f Figure) Max() float64 { return slices.Max(f.Values) }

// Report is what a run measured, in the order measured.
type Report struct {
	Figures []Figure
	// Notes say how the figures were made, where it matters to read them.
	Notes []string
}

// add records a repetition's value of key.
func (r *Report) add(key, label string, v float64) {
	for i := range r.Figures {
		if r.Figures[i].Key == key {
			r.Figures[i].Values = append(r.Figures[i].Values, v)
			return
		}
	}
	r.Figures = append(r.Figures, Figure{Key: key, Label: label, Values: []float64{v}})
}

// pair records a figure and its baseline, and their ratio, for one
// repetition.
func (r *Report) pair(key, label string, v, baseline float64) {
	r.add(key, label, v)
	r.add("baseline_"+key, "", baseline)
	if baseline > 0 {
		r.add("ratio_"+ratioName(key), "", v/baseline)
	}
}

// ratioName is key without its unit.
func ratioName(key string) string {
	for _, unit := range []string{"_us", "_ms", "_per_s", "_bytes"} {
		if s, ok := strings.CutSuffix(key, unit); ok {
			return s
		}
	}
	return key
}

func (r *Report) figure(key string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f, true
		}
	}
	return Figure{}, false
}

// JSON is the medians by key.
func (r *Report) JSON() map[string]float64 {
	out := make(map[string]float64, len(r.Figures))
	for _, f := range r.Figures {
		out[f.Key] = f.Median()
	}
	return out
}

// WriteTable prints a row per figure: its median [min–max] over the
// repetitions, the baseline's beside it and the ratio of the medians.
func (r *Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tpalyra, median [min–max]\traw baseline, same run\tratio")
	for _, f := range r.Figures {
		if strings.HasPrefix(f.Key, "baseline_") || strings.HasPrefix(f.Key, "ratio_") {
			continue
		}
		base, ratio := "", ""
		if b, ok := r.figure("baseline_" + f.Key); ok {
			base = spread(b, f.Key)
			if b.Median() > 0 {
				ratio = fmt.Sprintf("%.2f×", f.Median()/b.Median())
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Label, spread(f, f.Key), base, ratio)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range r.Notes {
		if _, err := fmt.Fprintln(w, "note:", n); err != nil {
			return err
		}
	}
	return nil
}

// spread is "median [min–max] unit", the unit read off key.
func spread(f Figure, key string) string {
	unit, scale := "", 1.0
	switch {
	case strings.HasSuffix(key, "_us"):
		unit = "µs"
	case strings.HasSuffix(key, "_ms_per_s"):
		// CPU time per second of wall time, as a share of one core.
		unit, scale = "% of a core", 0.1
	case strings.HasSuffix(key, "_ms"):
		unit = "ms"
	case strings.HasSuffix(key, "_per_s"):
		unit = "/s"
	case strings.HasSuffix(key, "_bytes"):
		unit, scale = "KiB", 1.0/1024
	}
	num := func(v float64) string {
		v *= scale
		switch {
		case v >= 100:
			return fmt.Sprintf("%.0f", v)
		case v >= 10:
			return fmt.Sprintf("%.1f", v)
		default:
			return fmt.Sprintf("%.2f", v)
		}
	}
	s := num(f.Median())
	if len(f.Values) > 1 {
		s += " [" + num(f.Min()) + "–" + num(f.Max()) + "]"
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

// percentile is the p-th percentile (0 < p ≤ 1, nearest rank) of d, which
// it sorts.
func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	i := int(math.Ceil(float64(len(d))*p)) - 1
	return d[min(max(i, 0), len(d)-1)]
}

func micros(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
func millis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
