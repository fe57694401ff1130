package daemon

import (
	"bytes"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// Encoding a scrape of 1,000 rules and 100 peers in the text exposition
// format took about 80% of its CPU: for every series expfmt writes the
// name, escapes each label value and formats the value, through a call
// per piece. A series' line is the same at every scrape up to its value,
// so it is rendered once, by expfmt itself (renderSeries), when the
// series is built for a ruleset or a peer (metricseries.go), and a scrape
// only appends the families' HELP and TYPE lines, those lines and the
// values into one reused buffer. The registry's own families (the Go
// runtime's, the process's, the daemon's events) are few: expfmt encodes
// them, in name order among the collector's. Other formats (OpenMetrics,
// protobuf) and anything unusual go through promhttp, from the same
// families: TestKernelMetricsMatchRegistry holds the two to one output.

// renderSeries renders a series of family d with labels and the value 0
// in the text exposition format, and returns the family's HELP and TYPE
// lines and the series' line up to its value.
func renderSeries(d *familyDef, labels []*dto.LabelPair) (header, sample []byte, err error) {
	zero := 0.0
	m := &dto.Metric{Label: labels}
	if d.typ == dto.MetricType_COUNTER {
		m.Counter = &dto.Counter{Value: &zero}
	} else {
		m.Gauge = &dto.Gauge{Value: &zero}
	}
	var b bytes.Buffer
	mf := &dto.MetricFamily{Name: &d.name, Help: &d.help, Type: d.typ.Enum(), Metric: []*dto.Metric{m}}
	if _, err := expfmt.MetricFamilyToText(&b, mf); err != nil {
		return nil, nil, err
	}
	text := b.Bytes()
	line := bytes.LastIndexByte(text[:len(text)-1], '\n') + 1
	sample, ok := bytes.CutSuffix(text[line:], []byte("0\n"))
	if !ok {
		return nil, nil, fmt.Errorf("metric %s: unexpected text exposition %q", d.name, text[line:])
	}
	// Copies: a series keeps its line, not the family's help text.
	return bytes.Clone(text[:line]), bytes.Clone(sample), nil
}

// appendValue appends v as expfmt writes a sample's value: the shortest
// representation in strconv's 'g' format, and 0 for -0. 'g' writes an
// integer below 1e6 in magnitude as its digits, which AppendInt does for
// a fraction of the cost; most counters are such integers.
func appendValue(b []byte, v float64) []byte {
	if v == 0 {
		return append(b, '0')
	}
	if v > -1e6 && v < 1e6 && v == math.Trunc(v) {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// writeText writes f in the text exposition format.
func (f *family) writeText(buf *bytes.Buffer) {
	buf.Write(f.def.header)
	var num [32]byte
	for i, sr := range f.series {
		buf.Write(sr.sample)
		buf.Write(appendValue(num[:0], f.values[i]))
		buf.WriteByte('\n')
	}
}

// writeText writes what Gather gathers to buf in format, a text
// exposition format, as promhttp would serve it with ContinueOnError:
// what could be gathered, errors aside. It reports false, having written
// nothing, when nothing was gathered and an error must be answered, which
// promhttp does. The collector's names and label names are valid in the
// legacy character set, which every escaping scheme of the text format
// leaves as they are (model.EscapeMetricFamily), so the lines rendered
// once serve every text format Negotiate picks.
func (g kernelGatherer) writeText(buf *bytes.Buffer, format expfmt.Format) bool {
	// The registry's collectors (the process collector reads /proc)
	// while the kernel is read.
	var mfs []*dto.MetricFamily
	var err error
	gathered := make(chan struct{})
	go func() {
		defer close(gathered)
		mfs, err = g.reg.Gather()
	}()
	s := g.k.scrape()
	<-gathered
	enc := expfmt.NewEncoder(buf, format)
	written, i := 0, 0
	encodeUpTo := func(name string) {
		for ; i < len(mfs) && (name == "" || mfs[i].GetName() < name); i++ {
			// An encoding error leaves the family out, as ContinueOnError.
			if enc.Encode(mfs[i]) == nil {
				written++
			}
		}
	}
	for _, f := range s.families {
		encodeUpTo(f.def.name)
		if i < len(mfs) && mfs[i].GetName() == f.def.name {
			continue // gathered twice: the registry's is served (see Gather)
		}
		f.writeText(buf)
		written++
	}
	encodeUpTo("")
	if written == 0 && (err != nil || len(s.invalid) > 0) {
		buf.Reset()
		return false
	}
	return true
}

// metricsHandler serves /metrics: the text exposition of a kernelGatherer
// written by it (see writeText), everything else by promhttp.
type metricsHandler struct {
	promhttp http.Handler
	kernel   *kernelGatherer // nil when the gatherer is not one
	inFlight chan struct{}
	bufs     sync.Pool
}

// metricsInFlight bounds concurrent scrapes: each dumps the counters over
// netlink; a handful of concurrent scrapers is plenty and more only load
// the kernel.
const metricsInFlight = 4

// maxPooledScrape is the largest scrape buffer kept for the next scrape.
const maxPooledScrape = 16 << 20

func newMetricsHandler(g prometheus.Gatherer) *metricsHandler {
	h := &metricsHandler{
		promhttp: promhttp.HandlerFor(g, promhttp.HandlerOpts{
			ErrorHandling: promhttp.ContinueOnError,
			// newGzipHandler compresses, faster (see metricsgzip.go).
			DisableCompression: true,
		}),
		inFlight: make(chan struct{}, metricsInFlight),
	}
	if kg, ok := g.(kernelGatherer); ok {
		h.kernel = &kg
	}
	h.bufs.New = func() any { return new(bytes.Buffer) }
	return h
}

func (h *metricsHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	select {
	case h.inFlight <- struct{}{}:
		defer func() { <-h.inFlight }()
	default:
		http.Error(w, fmt.Sprintf("Limit of concurrent requests reached (%d), try again later.", metricsInFlight),
			http.StatusServiceUnavailable)
		return
	}
	format := expfmt.Negotiate(r.Header)
	if h.kernel == nil || format.FormatType() != expfmt.TypeTextPlain {
		h.promhttp.ServeHTTP(w, r)
		return
	}
	buf := h.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= maxPooledScrape {
			h.bufs.Put(buf)
		}
	}()
	if !h.kernel.writeText(buf, format) {
		h.promhttp.ServeHTTP(w, r)
		return
	}
	w.Header().Set("Content-Type", string(format))
	_, _ = w.Write(buf.Bytes())
}
