package server

import (
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// TestServeRuntimeMetrics checks that the diag listener's runtime/metrics
// page has the memory classes and the goroutine count the bench reads, each
// as "name number", and no histogram.
func TestServeRuntimeMetrics(t *testing.T) {
	rec := httptest.NewRecorder()
	serveRuntimeMetrics(rec, httptest.NewRequest("GET", "/debug/runtime-metrics", nil))
	got := map[string]float64{}
	for _, line := range strings.Split(strings.TrimSpace(rec.Body.String()), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("line %q is not \"name value\"", line)
		}
		f, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		got[name] = f
	}
	for _, name := range []string{
		"/memory/classes/heap/objects:bytes", "/memory/classes/heap/free:bytes",
		"/memory/classes/heap/released:bytes", "/memory/classes/heap/stacks:bytes",
		"/memory/classes/total:bytes", "/sched/goroutines:goroutines",
	} {
		if _, ok := got[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
	if got["/memory/classes/total:bytes"] <= 0 || got["/sched/goroutines:goroutines"] < 1 {
		t.Errorf("implausible values: total %v, goroutines %v", got["/memory/classes/total:bytes"], got["/sched/goroutines:goroutines"])
	}
	if _, ok := got["/sched/latencies:seconds"]; ok {
		t.Error("a histogram is listed")
	}
}
