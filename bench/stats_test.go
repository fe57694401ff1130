package bench

import (
	"math"
	"testing"
)

func TestStats(t *testing.T) {
	for _, tc := range []struct {
		name                string
		xs                  []float64
		median, min, max    float64
		p50, p99, p90, p100 float64
	}{
		{"one", []float64{3}, 3, 3, 3, 3, 3, 3, 3},
		{"odd", []float64{5, 1, 3}, 3, 1, 5, 3, 5, 5, 5},
		{"even", []float64{4, 1, 3, 2}, 2.5, 1, 4, 2, 4, 4, 4},
		{"ten", []float64{10, 9, 8, 7, 6, 5, 4, 3, 2, 1}, 5.5, 1, 10, 5, 10, 9, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]float64(nil), tc.xs...)
			check := func(what string, got, want float64) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %v, want %v", what, got, want)
				}
			}
			check("Median", Median(tc.xs), tc.median)
			check("Min", Min(tc.xs), tc.min)
			check("Max", Max(tc.xs), tc.max)
			check("P50", Percentile(tc.xs, 50), tc.p50)
			check("P90", Percentile(tc.xs, 90), tc.p90)
			check("P99", Percentile(tc.xs, 99), tc.p99)
			check("P100", Percentile(tc.xs, 100), tc.p100)
			for i := range in {
				if in[i] != tc.xs[i] {
					t.Fatalf("the input was reordered: %v", tc.xs)
				}
			}
		})
	}
}

func TestPercentileOf100(t *testing.T) {
	xs := make([]float64, 100)
	for i := range xs {
		xs[i] = float64(100 - i) // 100..1
	}
	if got := Percentile(xs, 99); got != 99 {
		t.Errorf("p99 of 1..100 = %v, want 99", got)
	}
	if got := Percentile(xs, 1); got != 1 {
		t.Errorf("p1 of 1..100 = %v, want 1", got)
	}
}

func TestStatsEmpty(t *testing.T) {
	for name, v := range map[string]float64{
		"Median": Median(nil), "Min": Min(nil), "Max": Max(nil), "Percentile": Percentile(nil, 50),
		"Percentile(0)": Percentile([]float64{1}, 0),
	} {
		if !math.IsNaN(v) {
			t.Errorf("%s of nothing = %v, want NaN", name, v)
		}
	}
}
