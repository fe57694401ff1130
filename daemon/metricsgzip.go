package daemon

import (
	"compress/gzip"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Prometheus asks for gzip. promhttp compresses at gzip's default level,
// which for the few hundred kilobytes of a scrape of a thousand rules cost
// about as much as building the scrape; gzip.BestSpeed takes a fraction of
// that for output a little larger, which is the better trade for a scrape
// that mostly crosses a loopback or a LAN. So the handler compresses
// itself, at that level, and promhttp never does.

// gzipHandler serves h's responses gzip-compressed to clients that accept
// gzip, at gzip.BestSpeed.
type gzipHandler struct {
	h    http.Handler
	pool sync.Pool
}

func newGzipHandler(h http.Handler) *gzipHandler {
	g := &gzipHandler{h: h}
	g.pool.New = func() any {
		w, _ := gzip.NewWriterLevel(io.Discard, gzip.BestSpeed) // a valid level: no error
		return w
	}
	return g
}

func (g *gzipHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Add("Vary", "Accept-Encoding")
	if !acceptsGzip(r.Header.Get("Accept-Encoding")) {
		g.h.ServeHTTP(w, r)
		return
	}
	gz := g.pool.Get().(*gzip.Writer)
	defer g.pool.Put(gz)
	gz.Reset(w)
	gw := &gzipResponseWriter{ResponseWriter: w, gz: gz}
	g.h.ServeHTTP(gw, r)
	if gw.wroteHeader {
		_ = gz.Close() // the client sees a cut response
	}
}

// gzipResponseWriter compresses the body of a response, once its header
// says it has one.
type gzipResponseWriter struct {
	http.ResponseWriter
	gz          *gzip.Writer
	wroteHeader bool
}

func (w *gzipResponseWriter) WriteHeader(status int) {
	if !w.wroteHeader {
		w.wroteHeader = true
		w.Header().Del("Content-Length")
		w.Header().Set("Content-Encoding", "gzip")
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *gzipResponseWriter) Write(b []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.gz.Write(b)
}

// acceptsGzip reports whether an Accept-Encoding header value accepts
// gzip: names it (or *) with a q-value above 0 (RFC 9110, 12.5.3).
func acceptsGzip(accept string) bool {
	for part := range strings.SplitSeq(accept, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		if coding != "gzip" && coding != "*" {
			continue
		}
		q := 1.0
		for p := range strings.SplitSeq(params, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(p), "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "q") {
				if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
					q = f
				}
			}
		}
		if q > 0 {
			return true
		}
	}
	return false
}
