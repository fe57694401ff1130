package daemon

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A scrape of 1,000 rules and 100 peers is some 2,500 series. Through a
// registry, each is a prometheus.Metric written into a new dto.Metric and
// then checked again (label names and values, a hash against duplicates)
// and sorted: that took as long as reading the kernel. The collector's
// series are checked once, when their labels are built (metricseries.go),
// and come out in the exposition's order, so a scrape fills its families
// directly: series and values, a few allocations per family rather than
// several per series. The text exposition is written from them
// (metricstext.go); WithKernelMetrics builds their dto form, for the
// other formats, beside a registry's. Registered on a registry instead,
// the collector emits the same series through Collect, which is how the
// tests hold every way to one output.

// familyDef is one metric family of the collector.
type familyDef struct {
	name, help string
	typ        dto.MetricType
	desc       *prometheus.Desc
	// header is the family's HELP and TYPE lines in the text exposition
	// format.
	header []byte
}

func newFamilyDef(name string, typ dto.MetricType, help string, labels ...string) *familyDef {
	d := &familyDef{name: name, help: help, typ: typ, desc: prometheus.NewDesc(name, help, labels, nil)}
	header, _, err := renderSeries(d, nil)
	if err != nil {
		panic(fmt.Sprintf("metric family %s: %v", name, err)) // a constant of this package
	}
	d.header = header
	return d
}

// scrape is what one scrape read: metric families in the order of the
// collector's defs, and the series whose labels the client library
// rejects.
type scrape struct {
	families []*family
	invalid  []*series
}

// family is a metric family being filled: its series and their values,
// in the exposition's order. The dto form that a registry's Gather and
// Collect want is built from it only for them (metricFamily); the text
// exposition is written from it directly (metricstext.go).
type family struct {
	def    *familyDef
	series []*series
	values []float64
}

// family starts the family of d in s, for up to n series.
func (s *scrape) family(d *familyDef, n int) *family {
	f := &family{def: d, series: make([]*series, 0, n), values: make([]float64, 0, n)}
	s.families = append(s.families, f)
	return f
}

// add adds the value v of series sr, which must be of f's family.
func (f *family) add(s *scrape, sr *series, v float64) {
	if sr.invalid != nil {
		s.invalid = append(s.invalid, sr)
		return
	}
	f.series, f.values = append(f.series, sr), append(f.values, v)
}

// metricFamily is f as a dto.MetricFamily. Its metrics, their values and
// their counters or gauges are each allocated at once.
func (f *family) metricFamily() *dto.MetricFamily {
	d, n := f.def, len(f.series)
	mf := &dto.MetricFamily{Name: &d.name, Help: &d.help, Type: d.typ.Enum(), Metric: make([]*dto.Metric, n)}
	metrics, values := make([]dto.Metric, n), slices.Clone(f.values)
	var counters []dto.Counter
	var gauges []dto.Gauge
	if d.typ == dto.MetricType_COUNTER {
		counters = make([]dto.Counter, n)
	} else {
		gauges = make([]dto.Gauge, n)
	}
	for i, sr := range f.series {
		m := &metrics[i]
		m.Label = sr.labels
		if counters != nil {
			counters[i].Value = &values[i]
			m.Counter = &counters[i]
		} else {
			gauges[i].Value = &values[i]
			m.Gauge = &gauges[i]
		}
		mf.Metric[i] = m
	}
	return mf
}

// scrape reads the kernel: the counters and the WireGuard peers at once,
// each part timed on its own.
func (c *KernelCollector) scrape() *scrape {
	var rules, tunnels scrape
	var rulesOK, tunnelsOK bool
	var rulesTook, tunnelsTook time.Duration
	var wg sync.WaitGroup
	wg.Go(func() {
		start := c.now()
		tunnelsOK = c.collectTunnels(&tunnels)
		tunnelsTook = c.now().Sub(start)
	})
	start := c.now()
	rulesOK = c.collectRules(&rules)
	rulesTook = c.now().Sub(start)
	wg.Wait()

	out := &scrape{}
	up, took := out.family(c.readUp, 2), out.family(c.readDuration, 2)
	// The part label's values, nftables then wireguard, are in order.
	up.add(out, &c.parts.nftablesUp, boolValue(rulesOK))
	up.add(out, &c.parts.wireguardUp, boolValue(tunnelsOK))
	took.add(out, &c.parts.nftablesTook, rulesTook.Seconds())
	took.add(out, &c.parts.wireguardTook, tunnelsTook.Seconds())
	out.families = append(out.families, rules.families...)
	out.families = append(out.families, tunnels.families...)
	out.invalid = slices.Concat(rules.invalid, tunnels.invalid)
	// Families in name order, and none empty, as a registry gathers them.
	out.families = slices.DeleteFunc(out.families, func(f *family) bool { return len(f.series) == 0 })
	slices.SortStableFunc(out.families, func(a, b *family) int { return strings.Compare(a.def.name, b.def.name) })
	return out
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// partSeries are the series of edgefw_kernel_read_up and
// edgefw_kernel_read_duration_seconds, one per part.
type partSeries struct {
	nftablesUp, wireguardUp, nftablesTook, wireguardTook series
}

// dtoMetric is a metric of a scrape as a prometheus.Metric, for Collect.
type dtoMetric struct {
	desc *prometheus.Desc
	m    *dto.Metric
}

// Desc implements prometheus.Metric.
func (d *dtoMetric) Desc() *prometheus.Desc { return d.desc }

// Write implements prometheus.Metric.
func (d *dtoMetric) Write(out *dto.Metric) error {
	out.Label, out.Counter, out.Gauge = d.m.Label, d.m.Counter, d.m.Gauge
	return nil
}

// WithKernelMetrics returns a Gatherer of reg's metrics and the kernel
// collector k's, which must not be registered on reg: k's families are
// built as the exposition wants them (see scrape) and join reg's as they
// are. A family of k that reg also gathers is left out, with an error.
func WithKernelMetrics(reg prometheus.Gatherer, k *KernelCollector) prometheus.Gatherer {
	return kernelGatherer{reg: reg, k: k}
}

type kernelGatherer struct {
	reg prometheus.Gatherer
	k   *KernelCollector
}

// Gather implements prometheus.Gatherer.
func (g kernelGatherer) Gather() ([]*dto.MetricFamily, error) {
	var errs prometheus.MultiError
	mfs, err := g.reg.Gather()
	if err != nil {
		if me, ok := err.(prometheus.MultiError); ok {
			errs = append(errs, me...)
		} else {
			errs = append(errs, err)
		}
	}
	s := g.k.scrape()
	registered := len(mfs)
	for _, f := range s.families {
		if slices.ContainsFunc(mfs[:registered], func(mf *dto.MetricFamily) bool { return mf.GetName() == f.def.name }) {
			errs = append(errs, fmt.Errorf("metric family %s is gathered twice: is the kernel collector also registered?", f.def.name))
			continue
		}
		mfs = append(mfs, f.metricFamily())
	}
	for _, sr := range s.invalid {
		errs = append(errs, fmt.Errorf("metric %s: %w", sr.def.desc, sr.invalid))
	}
	slices.SortStableFunc(mfs, func(a, b *dto.MetricFamily) int { return strings.Compare(a.GetName(), b.GetName()) })
	return mfs, errs.MaybeUnwrap()
}
