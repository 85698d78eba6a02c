package server

import (
	"fmt"
	"net/http"
	"runtime/metrics"
)

// serveRuntimeMetrics writes every scalar runtime/metrics sample as one
// "name value" line (histograms are left out). It is on the diag listener
// only: resident memory per session is read from /memory/classes/ (heap
// objects, free, released, stacks) without the stop-the-world that
// runtime.ReadMemStats takes.
func serveRuntimeMetrics(w http.ResponseWriter, _ *http.Request) {
	descs := metrics.All()
	samples := make([]metrics.Sample, 0, len(descs))
	for _, d := range descs {
		if d.Kind == metrics.KindUint64 || d.Kind == metrics.KindFloat64 {
			samples = append(samples, metrics.Sample{Name: d.Name})
		}
	}
	metrics.Read(samples)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	for _, s := range samples {
		switch s.Value.Kind() {
		case metrics.KindUint64:
			fmt.Fprintf(w, "%s %d\n", s.Name, s.Value.Uint64())
		case metrics.KindFloat64:
			fmt.Fprintf(w, "%s %g\n", s.Name, s.Value.Float64())
		}
	}
}
