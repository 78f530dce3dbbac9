package framework

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"k8s.io/client-go/rest"
)

// Sample is one series of a /metrics scrape: its name, its labels as
// written between the braces ("" for none), and its value.
type Sample struct {
	Name, Labels string
	Value        float64
}

// Scrape is a parsed /metrics page in Prometheus' text format.
type Scrape []Sample

// ParseMetrics parses the Prometheus text format, skipping comments.
func ParseMetrics(r io.Reader) (Scrape, error) {
	var out Scrape
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var s Sample
		rest := line
		if i := strings.IndexByte(line, '{'); i >= 0 {
			j := strings.LastIndexByte(line, '}')
			if j < i {
				return nil, fmt.Errorf("metrics line %q: unclosed labels", line)
			}
			s.Name, s.Labels, rest = line[:i], line[i+1:j], line[j+1:]
		} else {
			f := strings.Fields(line)
			s.Name, rest = f[0], strings.Join(f[1:], " ")
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		s.Value = v
		out = append(out, s)
	}
	return out, sc.Err()
}

// Names returns the set of metric names in the scrape.
func (s Scrape) Names() map[string]bool {
	out := map[string]bool{}
	for _, x := range s {
		out[x.Name] = true
	}
	return out
}

// Series maps "name{labels}" to the value, for the names given (all when none).
func (s Scrape) Series(names ...string) map[string]float64 {
	out := map[string]float64{}
	for _, x := range s {
		if len(names) == 0 || contains(names, x.Name) {
			out[x.Name+"{"+x.Labels+"}"] = x.Value
		}
	}
	return out
}

// Sum adds the values of the named metric's series.
func (s Scrape) Sum(name string) float64 {
	var t float64
	for _, x := range s {
		if x.Name == name {
			t += x.Value
		}
	}
	return t
}

func contains(names []string, n string) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

// ScrapeURL gets and parses url (a /metrics page).
func ScrapeURL(ctx context.Context, client *http.Client, url string) (Scrape, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scraping %s: %s", url, resp.Status)
	}
	out, err := ParseMetrics(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("scraping %s: %w", url, err)
	}
	return out, nil
}

// Metrics scrapes the kube-apiserver's own /metrics as its admin.
func (s *APIServer) Metrics(ctx context.Context) (Scrape, error) {
	client, err := rest.HTTPClientFor(s.env.Config)
	if err != nil {
		return nil, fmt.Errorf("kube-apiserver client: %w", err)
	}
	return ScrapeURL(ctx, client, strings.TrimSuffix(s.env.Config.Host, "/")+"/metrics")
}
