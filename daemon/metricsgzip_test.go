package daemon

import (
	"compress/gzip"
	"io"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAcceptsGzip(t *testing.T) {
	for accept, want := range map[string]bool{
		"":                           false,
		"gzip":                       true,
		"GZIP":                       true,
		"identity":                   false,
		"deflate, gzip;q=0.5":        true,
		"gzip;q=0":                   false,
		"gzip; q=0.0, identity":      false,
		"*":                          true,
		"br;q=1.0, gzip ; q = 0.001": true,
		"x-gzip":                     false,
	} {
		if got := acceptsGzip(accept); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", accept, got, want)
		}
	}
}

// TestMetricsHandlerGzip checks that a scrape asking for gzip gets the
// same body compressed, and one that does not, the body as it is.
func TestMetricsHandlerGzip(t *testing.T) {
	h := NewMetricsHandler(WithKernelMetrics(prometheus.NewRegistry(), NewCollector(hostKernel(), nil, fixedClock)), nil)
	get := func(encoding string) *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/metrics", nil)
		req.Header.Set("Accept-Encoding", encoding)
		h.ServeHTTP(rec, req)
		if rec.Code != 200 {
			t.Fatalf("GET /metrics with Accept-Encoding %q: %d", encoding, rec.Code)
		}
		if v := rec.Header().Get("Vary"); v != "Accept-Encoding" {
			t.Errorf("Vary: %q", v)
		}
		return rec
	}
	plain := get("identity")
	if ce := plain.Header().Get("Content-Encoding"); ce != "" {
		t.Errorf("Content-Encoding %q without gzip asked", ce)
	}
	zipped := get("gzip")
	if ce := zipped.Header().Get("Content-Encoding"); ce != "gzip" {
		t.Fatalf("Content-Encoding %q with gzip asked", ce)
	}
	if zipped.Header().Get("Content-Type") != plain.Header().Get("Content-Type") {
		t.Errorf("Content-Type %q compressed, %q not", zipped.Header().Get("Content-Type"), plain.Header().Get("Content-Type"))
	}
	r, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != plain.Body.String() {
		t.Errorf("gzip body differs:\n%s\nwant:\n%s", body, plain.Body)
	}
	if len(body) == 0 {
		t.Error("empty scrape")
	}
}
