package framework

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Balancer stands in for the Service in front of several dispatcher
// replicas: one TLS address the API server calls (its webhook URL), spreading
// the admission requests round-robin over the replicas whose /readyz answers
// 200. A replica is probed every ProbeInterval; one that refuses a
// connection is taken out at once and the request goes to the next one (an
// admission has no side effect a retry could repeat wrongly).
type Balancer struct {
	// URL is the admission endpoint to register (https://127.0.0.1:PORT/mutate-prowjobs).
	URL string
	// CABundle is the PEM certificate the API server must trust for URL.
	CABundle []byte

	srv       *httptest.Server
	mu        sync.Mutex
	backends  []*balancerBackend
	transport *http.Transport
	next      atomic.Uint64
	stop      context.CancelFunc
	done      chan struct{}

	latencyMu sync.Mutex
	latencies []time.Duration
	retries   atomic.Int64
	failures  atomic.Int64
}

// ProbeInterval is how often the Balancer checks each replica's /readyz.
const ProbeInterval = 100 * time.Millisecond

type balancerBackend struct {
	d      *ServeProcess
	target *url.URL
	ready  atomic.Bool
	served atomic.Int64
}

// StartBalancer starts a Balancer over replicas.
func StartBalancer(replicas ...*ServeProcess) (*Balancer, error) {
	b := &Balancer{done: make(chan struct{})}
	for _, d := range replicas {
		if err := b.add(d); err != nil {
			return nil, err
		}
	}
	if err := b.resetTransport(); err != nil {
		return nil, err
	}
	proxy := &httputil.ReverseProxy{
		Rewrite:   func(*httputil.ProxyRequest) {}, // the transport picks the replica
		Transport: roundTripperFunc(b.roundTrip),
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			b.failures.Add(1)
			http.Error(w, err.Error(), http.StatusBadGateway)
		},
	}
	b.srv = httptest.NewTLSServer(proxy)
	b.URL = b.srv.URL + "/mutate-prowjobs"
	b.CABundle = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: b.srv.Certificate().Raw})
	ctx, cancel := context.WithCancel(context.Background())
	b.stop = cancel
	go b.probe(ctx)
	return b, nil
}

func (b *Balancer) add(d *ServeProcess) error {
	u, err := url.Parse(d.WebhookURL)
	if err != nil {
		return fmt.Errorf("balancer: %s: webhook URL %q: %w", d.Name, d.WebhookURL, err)
	}
	b.backends = append(b.backends, &balancerBackend{d: d, target: u})
	return nil
}

// resetTransport trusts the CA of every replica. Callers hold mu or own b.
func (b *Balancer) resetTransport() error {
	pool := x509.NewCertPool()
	for _, be := range b.backends {
		ca, err := be.d.CABundle()
		if err != nil {
			return fmt.Errorf("balancer: %w", err)
		}
		if !pool.AppendCertsFromPEM(ca) {
			return fmt.Errorf("balancer: %s: no certificate in its CA bundle", be.d.Name)
		}
	}
	if b.transport != nil {
		b.transport.CloseIdleConnections()
	}
	b.transport = &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     30 * time.Second,
	}
	return nil
}

// Replace puts d in place of the replica of the same Name (after a restart:
// its certificate may be new).
func (b *Balancer) Replace(d *ServeProcess) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, be := range b.backends {
		if be.d.Name == d.Name {
			u, err := url.Parse(d.WebhookURL)
			if err != nil {
				return fmt.Errorf("balancer: %s: webhook URL %q: %w", d.Name, d.WebhookURL, err)
			}
			fresh := &balancerBackend{d: d, target: u}
			fresh.served.Store(be.served.Load())
			b.backends[i] = fresh
			return b.resetTransport()
		}
	}
	return fmt.Errorf("balancer: no replica named %s", d.Name)
}

// Ready returns the names of the replicas currently in rotation.
func (b *Balancer) Ready() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, be := range b.backends {
		if be.ready.Load() {
			out = append(out, be.d.Name)
		}
	}
	return out
}

// Served returns how many admissions each replica answered.
func (b *Balancer) Served() map[string]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int64{}
	for _, be := range b.backends {
		out[be.d.Name] = be.served.Load()
	}
	return out
}

// Retries is how many requests went to another replica after one failed;
// Failures how many no replica answered.
func (b *Balancer) Retries() int64  { return b.retries.Load() }
func (b *Balancer) Failures() int64 { return b.failures.Load() }

// Latencies returns the replica's answer time of every admission the
// Balancer relayed, sorted.
func (b *Balancer) Latencies() []time.Duration {
	b.latencyMu.Lock()
	out := append([]time.Duration(nil), b.latencies...)
	b.latencyMu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Close stops the Balancer.
func (b *Balancer) Close() {
	b.stop()
	<-b.done
	b.srv.Close()
	b.mu.Lock()
	b.transport.CloseIdleConnections()
	b.mu.Unlock()
}

func (b *Balancer) probe(ctx context.Context) {
	defer close(b.done)
	client := &http.Client{Timeout: 500 * time.Millisecond}
	for {
		b.mu.Lock()
		backends := append([]*balancerBackend(nil), b.backends...)
		b.mu.Unlock()
		var wg sync.WaitGroup
		for _, be := range backends {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ready := false
				if resp, err := client.Get(be.d.HealthURL + "/readyz"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					ready = resp.StatusCode == http.StatusOK
				}
				be.ready.Store(ready && !be.d.Exited())
			}()
		}
		wg.Wait()
		select {
		case <-ctx.Done():
			return
		case <-time.After(ProbeInterval):
		}
	}
}

// roundTrip sends the request to the next of the ready replicas, and on a
// transport error to the one after, until each was tried once.
func (b *Balancer) roundTrip(req *http.Request) (*http.Response, error) {
	var body []byte
	if req.Body != nil {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
		req.Body.Close()
	}
	b.mu.Lock()
	backends := append([]*balancerBackend(nil), b.backends...)
	transport := b.transport
	b.mu.Unlock()
	ready := slices.DeleteFunc(backends, func(be *balancerBackend) bool { return !be.ready.Load() })
	start := int(b.next.Add(1))
	var errs []error
	for i := range ready {
		be := ready[(start+i)%len(ready)]
		if i > 0 {
			b.retries.Add(1)
		}
		out := req.Clone(req.Context())
		out.URL = &url.URL{Scheme: be.target.Scheme, Host: be.target.Host, Path: be.target.Path, RawQuery: req.URL.RawQuery}
		out.Host = be.target.Host
		out.RequestURI = ""
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.ContentLength = int64(len(body))
		t0 := time.Now()
		resp, err := transport.RoundTrip(out)
		if err != nil {
			be.ready.Store(false) // until the next probe says otherwise
			errs = append(errs, fmt.Errorf("%s: %w", be.d.Name, err))
			continue
		}
		// The answer is relayed as it comes; its time to headers is the admission's latency.
		b.latencyMu.Lock()
		b.latencies = append(b.latencies, time.Since(t0))
		b.latencyMu.Unlock()
		be.served.Add(1)
		return resp, nil
	}
	if len(errs) == 0 {
		return nil, errors.New("balancer: no replica is ready")
	}
	return nil, fmt.Errorf("balancer: every ready replica failed: %w", errors.Join(errs...))
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
