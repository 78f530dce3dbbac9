package demand

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	clocktesting "k8s.io/utils/clock/testing"
)

// promServer answers /api/v1/query like Prometheus does: each query maps to a
// status and a body. It records the queries it saw.
type promServer struct {
	mu      sync.Mutex
	queries []string
	answers map[string]promAnswer
}

type promAnswer struct {
	status int
	body   string
	block  bool // hold the request until the client gives up
}

func (p *promServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	q := r.Form.Get("query")
	p.mu.Lock()
	p.queries = append(p.queries, q)
	a, ok := p.answers[q]
	p.mu.Unlock()
	if !ok {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"status":"error","errorType":"bad_data","error":"unexpected query"}`))
		return
	}
	if a.block {
		<-r.Context().Done()
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(a.status)
	_, _ = w.Write([]byte(a.body))
}

const (
	demandQuery14d = `sum(increase(prowjob_state_transitions{state="pending"}[14d])) by (job_name)`
	weightQuery    = `avg by (job_name) (avg_over_time(prowjob_duration_seconds{state="success"}[{{.Window}}]))`
	weightQuery7d  = `avg by (job_name) (avg_over_time(prowjob_duration_seconds{state="success"}[7d]))`
	demandQuery7d  = `sum(increase(prowjob_state_transitions{state="pending"}[7d])) by (job_name)`
	vectorBody     = `{"status":"success","data":{"resultType":"vector","result":[
		{"metric":{"job_name":"pull-ci-a"},"value":[1762000000,"120"]},
		{"metric":{"job_name":"pull-ci-b"},"value":[1762000000,"3.5"]},
		{"metric":{},"value":[1762000000,"7"]},
		{"metric":{"job_name":"pull-ci-nan"},"value":[1762000000,"NaN"]}]}}`
)

func TestPrometheusDemand(t *testing.T) {
	for _, tc := range []struct {
		name         string
		window       time.Duration
		weightQuery  string
		answers      map[string]promAnswer
		want         map[string]float64
		wantErr      string
		wantWarnings bool
	}{
		{
			name:    "success",
			answers: map[string]promAnswer{demandQuery14d: {200, vectorBody, false}},
			want:    map[string]float64{"pull-ci-a": 120, "pull-ci-b": 3.5},
		},
		{
			name:   "window substituted",
			window: 7 * 24 * time.Hour,
			answers: map[string]promAnswer{demandQuery7d: {200, `{"status":"success","data":{"resultType":"vector","result":[
				{"metric":{"job_name":"x"},"value":[1762000000,"1"]}]}}`, false}},
			want: map[string]float64{"x": 1},
		},
		{
			name:    "warnings are logged, data kept",
			answers: map[string]promAnswer{demandQuery14d: {200, strings.Replace(vectorBody, `"status":"success"`, `"status":"success","warnings":["partial response: store down"]`, 1), false}},
			want:    map[string]float64{"pull-ci-a": 120, "pull-ci-b": 3.5}, wantWarnings: true,
		},
		{
			name:        "duration weighting, mean weight for jobs without one",
			window:      7 * 24 * time.Hour,
			weightQuery: weightQuery,
			answers: map[string]promAnswer{
				demandQuery7d: {200, vectorBody, false},
				weightQuery7d: {200, `{"status":"success","data":{"resultType":"vector","result":[
					{"metric":{"job_name":"pull-ci-a"},"value":[1762000000,"10"]},
					{"metric":{"job_name":"pull-ci-other"},"value":[1762000000,"30"]}]}}`, false},
			},
			want: map[string]float64{"pull-ci-a": 1200, "pull-ci-b": 70},
		},
		{
			name:    "server error",
			answers: map[string]promAnswer{demandQuery14d: {500, `{"status":"error","errorType":"internal","error":"out of memory"}`, false}},
			wantErr: "server error: 500",
		},
		{
			name:    "server error without a JSON body",
			answers: map[string]promAnswer{demandQuery14d: {502, `<html>bad gateway</html>`, false}},
			wantErr: "502",
		},
		{
			name:    "malformed JSON",
			answers: map[string]promAnswer{demandQuery14d: {200, `{"status":"success","data":{"resultType":"vector","result":[{`, false}},
			wantErr: "prometheus demand: query",
		},
		{
			name:    "not a vector",
			answers: map[string]promAnswer{demandQuery14d: {200, `{"status":"success","data":{"resultType":"scalar","result":[1762000000,"1"]}}`, false}},
			wantErr: "result is a scalar, want a vector",
		},
		{
			name:        "weight query fails",
			weightQuery: weightQuery,
			answers: map[string]promAnswer{
				demandQuery14d: {200, vectorBody, false},
				strings.Replace(weightQuery, "{{.Window}}", "14d", 1): {422, `{"status":"error","errorType":"execution","error":"bad range"}`, false},
			},
			wantErr: "bad range",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := &promServer{answers: tc.answers}
			ts := httptest.NewServer(srv)
			defer ts.Close()
			var logged []string
			p, err := NewPrometheus(PrometheusOptions{
				URL: ts.URL, Window: tc.window, WeightQuery: tc.weightQuery,
				Logger: funcr.New(func(prefix, args string) { logged = append(logged, args) }, funcr.Options{}),
				Clock:  clocktesting.NewFakePassiveClock(time.Unix(1762000000, 0)),
			})
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.Demand(context.Background())
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				if got != nil {
					t.Errorf("demand %v returned with an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("demand %v, want %v", got, tc.want)
			}
			hasWarning := strings.Contains(strings.Join(logged, "\n"), "partial response: store down")
			if hasWarning != tc.wantWarnings {
				t.Errorf("warnings logged = %v, want %v (log: %v)", hasWarning, tc.wantWarnings, logged)
			}
		})
	}
}

func TestPrometheusTimeout(t *testing.T) {
	srv := &promServer{answers: map[string]promAnswer{demandQuery14d: {block: true}}}
	ts := httptest.NewServer(srv)
	defer ts.Close()
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		want    error
	}{
		{"caller's deadline", time.Hour, func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 20*time.Millisecond)
		}, context.DeadlineExceeded},
		{"own timeout", 20 * time.Millisecond, func() (context.Context, context.CancelFunc) {
			return context.WithCancel(context.Background())
		}, context.DeadlineExceeded},
		{"caller cancels", time.Hour, func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			return ctx, cancel
		}, context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := NewPrometheus(PrometheusOptions{URL: ts.URL, Timeout: tc.timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tc.ctx()
			defer cancel()
			got, err := p.Demand(ctx)
			if !errors.Is(err, tc.want) || got != nil {
				t.Fatalf("Demand = %v, %v; want nil, %v", got, err, tc.want)
			}
		})
	}
}

func TestNewPrometheusErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts PrometheusOptions
		want string
	}{
		{"no URL", PrometheusOptions{}, "URL is required"},
		{"bad URL", PrometheusOptions{URL: "http://[::1"}, `URL "http://[::1"`},
		{"bad template", PrometheusOptions{URL: "http://p", Query: "sum({{.Window)"}, "query"},
		{"unknown field", PrometheusOptions{URL: "http://p", WeightQuery: "avg(x[{{.Windoe}}])"}, "weight query"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewPrometheus(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
	p, err := NewPrometheus(PrometheusOptions{URL: "http://p"})
	if err != nil {
		t.Fatal(err)
	}
	if p.Query() != demandQuery14d {
		t.Errorf("default query %q, want %q", p.Query(), demandQuery14d)
	}
}
