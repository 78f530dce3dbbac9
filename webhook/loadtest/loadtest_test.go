package loadtest

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// The harness's knobs. The defaults are a smoke run that keeps `go test ./...` short.
var (
	rate        = flag.Int("rate", 200, "AdmissionReviews per second (1..20000)")
	duration    = flag.Duration("duration", time.Second, "how long to send (at most 10m)")
	jobCount    = flag.Int("jobs", 50000, "rows of the assignment table")
	maxInFlight = flag.Int("max-in-flight", 512, "requests in flight at most; a request due while all are busy is counted as dropped")
)

var clusters = []string{"build01", "build02", "build03", "build04", "build05", "build06", "build07", "build08", "build09", "build10"}

func jobName(i int) string { return fmt.Sprintf("periodic-ci-openshift-loadtest-%05d", i) }

// cacheDispatcher is a webhook.Admitter over a table.Cache, the same
// structure *dispatch.Dispatcher answers admission from.
type cacheDispatcher struct {
	cache    *table.Cache
	recorded atomic.Int64
}

func (c *cacheDispatcher) Status() webhook.Status {
	return webhook.Status{Ready: true, TableSize: c.cache.Len()}
}

func (c *cacheDispatcher) Lookup(job string) (table.Assignment, bool) { return c.cache.Lookup(job) }

func (c *cacheDispatcher) Assign(_ context.Context, job string, _ map[string]string, _ bool) (table.Assignment, error) {
	if a, ok := c.cache.Lookup(job); ok {
		return a, nil
	}
	return table.Assignment{}, errors.New("unknown job")
}

func (c *cacheDispatcher) IsManual(string) bool { return false }

func (c *cacheDispatcher) RecordAdmission(string) { c.recorded.Add(1) }

// reviewTemplate is an AdmissionReview of a realistic ProwJob on build01,
// split around its two placeholders: the job name and the request UID.
type reviewTemplate struct{ parts [][]byte }

const jobMark, uidMark = "@@JOB@@", "@@UID@@"

func newReviewTemplate(t testing.TB) *reviewTemplate {
	t.Helper()
	raw, err := os.ReadFile("../testdata/prowjob.json")
	if err != nil {
		t.Fatal(err)
	}
	var pj map[string]any
	if err := json.Unmarshal(raw, &pj); err != nil {
		t.Fatal(err)
	}
	spec := pj["spec"].(map[string]any)
	spec["job"], spec["cluster"] = jobMark, "build01"
	pj["metadata"].(map[string]any)["labels"].(map[string]any)["prow.k8s.io/job"] = jobMark
	obj, err := json.Marshal(pj)
	if err != nil {
		t.Fatal(err)
	}
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       uidMark,
			Kind:      metav1.GroupVersionKind{Group: "prow.k8s.io", Version: "v1", Kind: "ProwJob"},
			Resource:  metav1.GroupVersionResource{Group: "prow.k8s.io", Version: "v1", Resource: "prowjobs"},
			Namespace: "ci",
			Operation: admissionv1.Create,
			Object:    k8sruntime.RawExtension{Raw: obj},
		},
	}
	body, err := json.Marshal(review)
	if err != nil {
		t.Fatal(err)
	}
	// Split into literal parts; odd parts are placeholders, replaced in body().
	var parts [][]byte
	for len(body) > 0 {
		i := bytes.Index(body, []byte("@@"))
		if i < 0 {
			parts = append(parts, body)
			break
		}
		parts = append(parts, body[:i], body[i:i+7])
		body = body[i+7:]
	}
	return &reviewTemplate{parts: parts}
}

// body returns the review for job with uid.
func (rt *reviewTemplate) body(job, uid string) []byte {
	var b bytes.Buffer
	for _, p := range rt.parts {
		switch string(p) {
		case jobMark:
			b.WriteString(job)
		case uidMark:
			b.WriteString(uid)
		default:
			b.Write(p)
		}
	}
	return b.Bytes()
}

// result is what one run measured.
type result struct {
	sent, ok, wrong, failed, dropped int
	latencies                        []time.Duration
	elapsed                          time.Duration
	firstErr                         error
}

func TestLoad(t *testing.T) {
	if *rate < 1 || *rate > 20000 || *duration <= 0 || *duration > 10*time.Minute || *jobCount < len(clusters) || *maxInFlight < 1 {
		t.Fatalf("flags out of bounds: -rate %d (1..20000) -duration %v (..10m) -jobs %d -max-in-flight %d", *rate, *duration, *jobCount, *maxInFlight)
	}

	// The table: jobCount jobs spread over ten clusters.
	rows := make([]table.Assignment, *jobCount)
	for i := range rows {
		rows[i] = table.Assignment{Job: jobName(i), Cluster: clusters[i%len(clusters)], Reason: table.ReasonBalanced}
	}
	cache := table.NewCache()
	cache.Replace(&table.Table{GeneratedAt: time.Now(), Assignments: rows})
	d := &cacheDispatcher{cache: cache}

	reg := prometheus.NewRegistry()
	metrics, err := webhook.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := webhook.NewAdmission(d, metrics, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	bundle, _, err := certs.Ensure(certDir, certs.Hosts(nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	srv, err := webhook.NewServer(webhook.ServerOptions{Host: "127.0.0.1", Port: port, CertDir: certDir, Logger: logr.Discard()}, adm)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("server: %v", err)
		}
	}()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitListening(t, addr, done)

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle.CA)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12},
		MaxIdleConns:        *maxInFlight,
		MaxIdleConnsPerHost: *maxInFlight,
		IdleConnTimeout:     time.Minute,
	}}
	url := "https://" + addr + webhook.MutatePath
	tmpl := newReviewTemplate(t)

	runtime.GC()
	res := run(client, url, tmpl)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)

	slices.Sort(res.latencies)
	pct := func(p float64) time.Duration {
		if len(res.latencies) == 0 {
			return 0
		}
		return res.latencies[min(len(res.latencies)-1, int(p*float64(len(res.latencies))))]
	}
	t.Logf("load: %d jobs in the table, %d req/s for %v over TLS to 127.0.0.1", *jobCount, *rate, *duration)
	t.Logf("sent %d, answered correctly %d, wrong answers %d, errors %d, dropped (max in flight) %d", res.sent, res.ok, res.wrong, res.failed, res.dropped)
	t.Logf("throughput %.1f req/s over %v", float64(res.ok+res.wrong)/res.elapsed.Seconds(), res.elapsed.Round(time.Millisecond))
	t.Logf("latency p50 %v, p90 %v, p99 %v, max %v", pct(0.50), pct(0.90), pct(0.99), pct(1))
	t.Logf("memory (client and server in one process): RSS %s, peak RSS %s, heap in use %d MiB, heap objects %d, GC cycles %d",
		procStatus("VmRSS"), procStatus("VmHWM"), ms.HeapInuse>>20, ms.HeapObjects, ms.NumGC)
	if res.firstErr != nil {
		t.Logf("first error: %v", res.firstErr)
	}
	if res.failed > 0 || res.wrong > 0 || res.dropped > 0 {
		t.Errorf("%d errors, %d wrong answers, %d dropped", res.failed, res.wrong, res.dropped)
	}
	if got := int(d.recorded.Load()); got != res.sent-res.dropped {
		t.Errorf("%d admissions recorded, want %d", got, res.sent-res.dropped)
	}
}

// run sends at the fixed rate for the duration, open loop: request i is due
// at start + i/rate whether or not earlier ones have been answered.
func run(client *http.Client, url string, tmpl *reviewTemplate) result {
	total := int(float64(*rate) * duration.Seconds())
	interval := time.Second / time.Duration(*rate)
	var (
		mu  sync.Mutex
		res = result{latencies: make([]time.Duration, 0, total)}
		wg  sync.WaitGroup
	)
	slots := make(chan struct{}, *maxInFlight)
	start := time.Now()
	for i := range total {
		if wait := time.Until(start.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		res.sent++
		select {
		case slots <- struct{}{}:
		default:
			mu.Lock()
			res.dropped++
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			job := i % *jobCount
			body := tmpl.body(jobName(job), "uid-"+strconv.Itoa(i))
			t0 := time.Now()
			err := post(client, url, body, clusters[job%len(clusters)])
			took := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			var wrong *wrongAnswer
			switch {
			case err == nil:
				res.ok++
				res.latencies = append(res.latencies, took)
			case errors.As(err, &wrong):
				res.wrong++
				res.latencies = append(res.latencies, took)
			default:
				res.failed++
			}
			if err != nil && res.firstErr == nil {
				res.firstErr = err
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	return res
}

type wrongAnswer struct{ msg string }

func (w *wrongAnswer) Error() string { return w.msg }

// post sends one review and checks the answer: allowed, and patched to want
// unless the ProwJob is already there (build01).
func post(client *http.Client, url string, body []byte, want string) error {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		return err
	}
	r := review.Response
	switch {
	case r == nil || !r.Allowed:
		return &wrongAnswer{fmt.Sprintf("not allowed: %s", data)}
	case want == "build01" && len(r.Patch) != 0:
		return &wrongAnswer{fmt.Sprintf("patched a ProwJob already on %s: %s", want, r.Patch)}
	case want != "build01" && string(r.Patch) != `[{"op":"replace","path":"/spec/cluster","value":"`+want+`"}]`:
		return &wrongAnswer{fmt.Sprintf("patch %s, want cluster %s", r.Patch, want)}
	}
	return nil
}

// procStatus returns a field of /proc/self/status ("VmRSS"), or "?" off Linux.
func procStatus(field string) string {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func waitListening(t testing.TB, addr string, done <-chan error) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("server stopped: %v", err)
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
	}
	t.Fatal("the webhook server did not listen within 10s")
}
