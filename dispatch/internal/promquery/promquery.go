// Package promquery runs the instant queries of dispatch's Prometheus
// sources (demand by job, health by cluster) with the client_golang API
// client, and sums their samples by one label.
package promquery

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math"
	"strings"
	"text/template"
	"time"

	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// Result is one query's samples summed by label, and what was left out.
type Result struct {
	// Sums maps each value of the label to the sum of its samples.
	Sums map[string]float64
	// Skipped counts the samples without the label or with an unusable value.
	Skipped int
	// Warnings are Prometheus's warnings about the query.
	Warnings promv1.Warnings
}

// SumBy runs query at at and sums its samples by label. A sample without
// the label, NaN, negative, -Inf, or +Inf unless allowInf, is skipped. A
// failed query, or an answer that is not a vector, is an error naming the
// query.
func SumBy(ctx context.Context, api promv1.API, query string, at time.Time, label model.LabelName, allowInf bool) (Result, error) {
	value, warnings, _, err := api.Query(ctx, query, at)
	res := Result{Warnings: warnings}
	if err != nil {
		return res, fmt.Errorf("query %q: %s%w", query, cause(err), err)
	}
	vec, ok := value.(model.Vector)
	if !ok {
		return res, fmt.Errorf("query %q: result is a %s, want a vector", query, valueType(value))
	}
	res.Sums = make(map[string]float64, len(vec))
	for _, s := range vec {
		key := string(s.Metric[label])
		v := float64(s.Value)
		if key == "" || math.IsNaN(v) || v < 0 || (math.IsInf(v, 1) && !allowInf) {
			res.Skipped++
			continue
		}
		res.Sums[key] += v
	}
	return res, nil
}

func valueType(v model.Value) string {
	if v == nil {
		return "nothing"
	}
	return v.Type().String()
}

// Render fills a query template's {{.Window}} with window as a Prometheus
// duration ("14d", "30m"). An unknown key or a bad template is an error.
func Render(text string, window time.Duration) (string, error) {
	tmpl, err := template.New("query").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, struct{ Window string }{Duration(window)}); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Duration formats d as a Prometheus duration, in whole days when it is
// some ("14d" rather than "2w").
func Duration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return model.Duration(d).String()
}

// cause says in words why a query failed when the reason is how
// Prometheus was reached (credentials, TLS), so that /readyz names it;
// "" otherwise.
func cause(err error) string {
	var apiErr *promv1.Error
	if errors.As(err, &apiErr) && apiErr.Type == promv1.ErrClient {
		switch {
		case strings.HasSuffix(apiErr.Msg, " 401"):
			return "Prometheus refused the request as unauthenticated (HTTP 401 Unauthorized): the bearer token or basic auth credentials are missing or wrong: "
		case strings.HasSuffix(apiErr.Msg, " 403"):
			return "Prometheus refused access (HTTP 403 Forbidden): the token's identity may not query it: "
		}
	}
	var unknownCA x509.UnknownAuthorityError
	var verify *tls.CertificateVerificationError
	var hostname x509.HostnameError
	switch {
	case errors.As(err, &unknownCA), errors.As(err, &hostname), errors.As(err, &verify):
		return "Prometheus' serving certificate is not trusted (wrong or missing CA file, or the wrong server name): "
	}
	return ""
}
