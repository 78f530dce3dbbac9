package promquery

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
)

func TestSumBy(t *testing.T) {
	const vector = `{"status":"success","data":{"resultType":"vector","result":[
		{"metric":{"cluster":"build01"},"value":[1764590400,"4"]},
		{"metric":{"cluster":"build01","state":"error"},"value":[1764590400,"1.5"]},
		{"metric":{"cluster":"build02"},"value":[1764590400,"+Inf"]},
		{"metric":{"cluster":"build03"},"value":[1764590400,"NaN"]},
		{"metric":{"cluster":"build04"},"value":[1764590400,"-1"]},
		{"metric":{},"value":[1764590400,"9"]}]}}`
	tests := []struct {
		name        string
		answer      string
		allowInf    bool
		want        map[string]float64
		wantSkipped int
		wantErr     string
	}{
		{name: "sums by label, skips the unusable", answer: vector, want: map[string]float64{"build01": 5.5}, wantSkipped: 4},
		{name: "+Inf kept when allowed", answer: vector, allowInf: true, want: map[string]float64{"build01": 5.5, "build02": 0}, wantSkipped: 3},
		{name: "not a vector", answer: `{"status":"success","data":{"resultType":"scalar","result":[1764590400,"3"]}}`, wantErr: "result is a scalar, want a vector"},
		{name: "query error", answer: `{"status":"error","errorType":"bad_data","error":"parse error"}`, wantErr: `query "q"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if strings.Contains(tc.answer, `"status":"error"`) {
					w.WriteHeader(http.StatusBadRequest)
				}
				_, _ = w.Write([]byte(tc.answer))
			}))
			defer srv.Close()
			client, err := promapi.NewClient(promapi.Config{Address: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			res, err := SumBy(context.Background(), promv1.NewAPI(client), "q", time.Unix(1764590400, 0), "cluster", tc.allowInf)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.allowInf { // +Inf does not compare with DeepEqual's ==; check it apart
				if v, ok := res.Sums["build02"]; !ok || v <= 1e308 {
					t.Errorf("build02 %v, want +Inf kept", v)
				}
				res.Sums["build02"] = 0
			}
			if !reflect.DeepEqual(res.Sums, tc.want) || res.Skipped != tc.wantSkipped {
				t.Errorf("sums %v skipped %d, want %v and %d", res.Sums, res.Skipped, tc.want, tc.wantSkipped)
			}
		})
	}
}

func TestRender(t *testing.T) {
	tests := []struct {
		text    string
		window  time.Duration
		want    string
		wantErr bool
	}{
		{text: `increase(x[{{.Window}}])`, window: 14 * 24 * time.Hour, want: `increase(x[14d])`},
		{text: `increase(x[{{.Window}}])`, window: 30 * time.Minute, want: `increase(x[30m])`},
		{text: `increase(x[{{.Window}}])`, window: 90 * time.Minute, want: `increase(x[1h30m])`},
		{text: `no template`, window: time.Hour, want: `no template`},
		{text: `{{.Nope}}`, window: time.Hour, wantErr: true},
		{text: `{{.Window`, window: time.Hour, wantErr: true},
	}
	for _, tc := range tests {
		got, err := Render(tc.text, tc.window)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("Render(%q, %s) = %q, %v; want %q, error %v", tc.text, tc.window, got, err, tc.want, tc.wantErr)
		}
	}
}

// TestSumByNamesTheCause: a refused credential and an untrusted
// certificate say so in words, ahead of the client's error.
func TestSumByNamesTheCause(t *testing.T) {
	unauthorized := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
	}))
	defer unauthorized.Close()
	forbidden := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "Forbidden", http.StatusForbidden)
	}))
	defer forbidden.Close()
	untrusted := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer untrusted.Close()
	for _, tc := range []struct{ url, want string }{
		{unauthorized.URL, "unauthenticated (HTTP 401 Unauthorized)"},
		{forbidden.URL, "HTTP 403 Forbidden"},
		{untrusted.URL, "serving certificate is not trusted"},
	} {
		c, err := promapi.NewClient(promapi.Config{Address: tc.url})
		if err != nil {
			t.Fatal(err)
		}
		_, err = SumBy(context.Background(), promv1.NewAPI(c), "q", time.Now(), "cluster", false)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want one saying %q", tc.url, err, tc.want)
		}
	}
}
