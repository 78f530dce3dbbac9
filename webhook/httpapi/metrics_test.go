package httpapi

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestAPIMetricsCountByRouteAndCode(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/assignments/{job}", func(w http.ResponseWriter, r *http.Request) {
		if r.PathValue("job") == "nope" {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		_, _ = w.Write([]byte("{}"))
	})
	srv := httptest.NewServer(m.Instrument(mux))
	defer srv.Close()
	for _, path := range []string{"/api/v1/assignments/a", "/api/v1/assignments/b", "/api/v1/assignments/nope", "/elsewhere"} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	for _, tc := range []struct {
		handler, code string
		want          float64
	}{
		{"GET /api/v1/assignments/{job}", "200", 2},
		{"GET /api/v1/assignments/{job}", "404", 1},
		{"none", "404", 1},
	} {
		if got := testutil.ToFloat64(m.requests.WithLabelValues(tc.handler, tc.code)); got != tc.want {
			t.Errorf("requests{handler=%q,code=%s} = %v, want %v", tc.handler, tc.code, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.duration); n != 2 {
		t.Errorf("%d duration series, want 2 (one per handler)", n)
	}
}
