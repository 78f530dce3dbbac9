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
	"maps"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
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
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	dto "github.com/prometheus/client_model/go"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/admission"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/certs"
)

// The harness's knobs. The defaults are a smoke run that keeps `go test ./...`
// short, under -race on two cores too; `make load` asks for the long run.
var (
	rate        = flag.Int("rate", 200, "AdmissionReviews per second (1..20000)")
	duration    = flag.Duration("duration", time.Second, "how long to send (at most 10m)")
	jobCount    = flag.Int("jobs", 5000, "jobs of the generated job config (100..200000)")
	maxInFlight = flag.Int("max-in-flight", 512, "requests in flight at most; a request due while all are busy is counted as dropped")
	newFraction = flag.Float64("new-fraction", 0.01, "share of the AdmissionReviews for jobs the table lacks, delta-assigned (0..1)")
	warmup      = flag.Duration("warmup", 2*time.Second, "ramp the rate up from zero this long first, answers checked but latencies and dropped requests reported apart: the client opens its connections (TLS handshakes) then, as kube-apiserver does once")
	nullHook    = flag.Bool("null", true, "then send the same load to a null webhook (controller-runtime's, with the same TLS and server options, answering allowed and doing no work) and report the ratio of the two p99s")
	windowLen   = flag.Duration("window", 0, "alternate the modes in windows this long (ours, ours while draining, the null webhook, then again) until each had -duration, so that a drift of the machine's load hits them alike; 0: one window of -duration each")
	drainEvery  = flag.Duration("drain-every", 0, "also measure ours while a drain loop drains a cluster, then undrains it, one operation this often (Dispatcher.Drain, Undrain), alternating the clusters whose drain strands no job; 0: no drain loop")
	cpuProfile  = flag.String("cpu-profile", "", "write a CPU profile (pprof) of the measured windows, from the end of the warm-up, here")
	heapProfile = flag.String("heap-profile", "", "write the live heap (pprof) here after the run, the dispatcher and webhook still up")
)

// runConfig is one run's knobs: the flags' values, or a test's.
type runConfig struct {
	rate, jobs, maxInFlight              int
	duration, window, warmup, drainEvery time.Duration
	newFraction                          float64
	null, kube                           bool
	cpuProfile, heapProfile              string
}

func flagConfig() runConfig {
	return runConfig{
		rate: *rate, jobs: *jobCount, maxInFlight: *maxInFlight,
		duration: *duration, window: *windowLen, warmup: *warmup, drainEvery: *drainEvery,
		newFraction: *newFraction, null: *nullHook, kube: *kube,
		cpuProfile: *cpuProfile, heapProfile: *heapProfile,
	}
}

func (c runConfig) validate() error {
	if c.rate < 1 || c.rate > 20000 || c.duration <= 0 || c.duration > 10*time.Minute || c.jobs < 100 || c.jobs > 200000 ||
		c.maxInFlight < 1 || !(c.newFraction >= 0 && c.newFraction <= 1) || c.warmup < 0 || c.warmup > time.Minute ||
		c.window < 0 || (c.window > 0 && c.window < 100*time.Millisecond) || c.drainEvery < 0 || (c.drainEvery > 0 && c.drainEvery < 10*time.Millisecond) {
		return fmt.Errorf("flags out of bounds: -rate %d (1..20000) -duration %v (..10m) -jobs %d (100..200000) -max-in-flight %d -new-fraction %v (0..1) -warmup %v (..1m) -window %v (0 or 100ms..) -drain-every %v (0 or 10ms..)",
			c.rate, c.duration, c.jobs, c.maxInFlight, c.newFraction, c.warmup, c.window, c.drainEvery)
	}
	return nil
}

// rounds returns how many rounds of windows a run has and each window's
// length: one window of the duration without -window, else windows of
// about -window that add up to the duration.
func (c runConfig) rounds() (n int, length time.Duration) {
	if c.window <= 0 || c.window >= c.duration {
		return 1, c.duration
	}
	n = int((c.duration + c.window - 1) / c.window)
	return n, c.duration / time.Duration(n)
}

// mode is what a window measures.
type mode int

const (
	modeOurs     mode = iota // the dispatcher's webhook
	modeDraining             // the dispatcher's webhook while the drain loop runs
	modeNull                 // the null webhook
)

func (m mode) String() string {
	return [...]string{"ours", "ours while draining", "null webhook"}[m]
}

// oldCluster is the spec.cluster of every ProwJob sent: the answer patches
// it unless the job's cluster is already this one.
const oldCluster = "build01"

// target is one job the harness sends AdmissionReviews for.
type target struct {
	name, typ, labels string // labels: genJob.labelsJSON
	want              string // the table's cluster; "" for a job the table lacks
}

// reviewTemplate is an AdmissionReview of a realistic ProwJob on build01,
// split around its placeholders: the job name, the job type, the request UID
// and the job's labels.
type reviewTemplate struct{ parts [][]byte }

const (
	jobMark, typeMark, uidMark = "@@JOB@@", "@@TYP@@", "@@UID@@"
	labelsMark                 = `"@@LBL@@"` // a JSON string in the template, an object in the review
)

var marks = []string{jobMark, typeMark, uidMark, labelsMark}

func newReviewTemplate(t testing.TB) *reviewTemplate {
	t.Helper()
	raw, err := os.ReadFile("../admission/testdata/prowjob.json")
	if err != nil {
		t.Fatal(err)
	}
	var pj map[string]any
	if err := json.Unmarshal(raw, &pj); err != nil {
		t.Fatal(err)
	}
	spec := pj["spec"].(map[string]any)
	spec["job"], spec["type"], spec["cluster"] = jobMark, typeMark, oldCluster
	meta := pj["metadata"].(map[string]any)
	meta["labels"] = strings.Trim(labelsMark, `"`)
	meta["annotations"].(map[string]any)["prow.k8s.io/job"] = jobMark
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
	// Split into literal parts and placeholders, replaced in body().
	var parts [][]byte
	for len(body) > 0 {
		at, mark := len(body), ""
		for _, m := range marks {
			if i := bytes.Index(body, []byte(m)); i >= 0 && i < at {
				at, mark = i, m
			}
		}
		if at > 0 {
			parts = append(parts, body[:at])
		}
		if mark == "" {
			break
		}
		parts = append(parts, []byte(mark))
		body = body[at+len(mark):]
	}
	return &reviewTemplate{parts: parts}
}

// body returns the review of a ProwJob of the job with uid, labelled as Prow
// labels it: the job's labels and prow.k8s.io/job and /type.
func (rt *reviewTemplate) body(tg *target, uid string) []byte {
	var b bytes.Buffer
	for _, p := range rt.parts {
		switch string(p) {
		case jobMark:
			b.WriteString(tg.name)
		case typeMark:
			b.WriteString(tg.typ)
		case uidMark:
			b.WriteString(uid)
		case labelsMark:
			b.WriteString(`{"prow.k8s.io/job":"`)
			b.WriteString(tg.name)
			b.WriteString(`","prow.k8s.io/type":"`)
			b.WriteString(tg.typ)
			b.WriteString(`"`)
			b.WriteString(tg.labels)
			b.WriteString(`}`)
		default:
			b.Write(p)
		}
	}
	return b.Bytes()
}

// result is what one run measured.
type result struct {
	sent, ok, wrong, failed, dropped int
	warmupDropped                    int             // of dropped, those of the warm-up
	newSent                          int             // reviews for jobs the table lacked (dropped ones included)
	warmupSent                       int             // reviews of the warm-up, all for jobs of the table
	latencies, newLatencies          []time.Duration // answered reviews after the warm-up; newLatencies: of new jobs only
	hitLatencies                     []time.Duration // answered reviews after the warm-up for jobs of the table
	warmupLatencies                  []time.Duration // answered reviews of the warm-up
	dials, measuredDials             int64           // connections the client opened in the warm-up, and after it
	raced                            int             // of ok, answers that matched neither lookup while a drain operation ran
	newJobs                          map[string]string
	elapsed                          time.Duration
	firstErr                         error
}

// add merges o, a later window's result, into r.
func (r *result) add(o result) {
	r.sent += o.sent
	r.ok += o.ok
	r.wrong += o.wrong
	r.failed += o.failed
	r.dropped += o.dropped
	r.warmupDropped += o.warmupDropped
	r.newSent += o.newSent
	r.warmupSent += o.warmupSent
	r.raced += o.raced
	r.latencies = append(r.latencies, o.latencies...)
	r.newLatencies = append(r.newLatencies, o.newLatencies...)
	r.hitLatencies = append(r.hitLatencies, o.hitLatencies...)
	r.warmupLatencies = append(r.warmupLatencies, o.warmupLatencies...)
	r.dials += o.dials
	r.measuredDials += o.measuredDials
	if r.newJobs == nil {
		r.newJobs = map[string]string{}
	}
	maps.Copy(r.newJobs, o.newJobs)
	r.elapsed += o.elapsed
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

func TestLoad(t *testing.T) {
	cfg := flagConfig()
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
	loadTest(t, cfg)
}

// summary is what loadTest measured, for a test to check.
type summary struct {
	modes  map[mode]*result         // every window of each mode, merged
	rounds []map[mode]time.Duration // each round's p99 by mode
	drains drainStats               // the drain loop's operations, over every draining window
	runs   map[string]float64       // engine_runs_total by operation over the draining windows (nil without the metric)
}

// loadTest runs the harness with cfg, logs what it measured and fails t on
// an error, a wrong answer or a request dropped after the warm-up.
func loadTest(t *testing.T, cfg runConfig) summary {
	setupStart := time.Now()

	// The inputs on disk, as serve reads them.
	dir := t.TempDir()
	w, err := writeWorkload(dir, cfg.jobs)
	if err != nil {
		t.Fatal(err)
	}
	wrote := time.Since(setupStart)

	// The real dispatcher, wired as serve wires it.
	reg := prometheus.NewRegistry()
	opts := dispatch.Options{
		DispatcherConfigPath: w.dispatcherConfig,
		ClusterConfigPath:    w.clusterConfig,
		JobConfigDir:         w.jobConfigDir,
		Demand:               demand.File{Path: w.demandFile},
		Registerer:           reg,
		Logger:               logr.Discard(),
	}
	var api *kubeAPI
	var shared *kubestate.Backend
	var st state.Backend
	if cfg.kube {
		api = startKubeAPI(t)
		shared = api.backend(t, "load-0")
		st = shared
	} else {
		files, err := store.NewBackend(filepath.Join(dir, "state"))
		if err != nil {
			t.Fatal(err)
		}
		st = files
	}
	t0 := time.Now()
	d, err := dispatch.New(context.Background(), opts, st)
	if err != nil {
		t.Fatal(err)
	}
	loaded := time.Since(t0)
	t0 = time.Now()
	runCtx, stopRun := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() {
		if shared == nil {
			runDone <- d.Run(runCtx)
			return
		}
		// As serve runs a replica: it follows the shared state (New watches it), and leads (alone) to dispatch.
		followed := make(chan error, 1)
		go func() { followed <- shared.Run(runCtx) }()
		shared.Elect(runCtx, func(leadCtx context.Context) { _ = d.Run(leadCtx) })
		runDone <- <-followed
	}()
	stopDispatcher := sync.OnceValue(func() error { stopRun(); return <-runDone })
	t.Cleanup(func() { _ = stopDispatcher() })

	metrics, err := admission.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	adm, err := admission.NewHandler(d, metrics, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	certDir := t.TempDir()
	bundle, _, err := certs.Ensure(certDir, certs.Hosts(nil), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(bundle.CA)
	tlsConfig := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: tls.VersionTLS12}
	addr, stopServer := startServer(t, certDir, tlsConfig, adm)
	t.Cleanup(func() { _ = stopServer() }) // runs before stopDispatcher's, as in serve
	waitReady(t, d)
	if shared != nil {
		waitPublished(t, shared) // the first publication (a burst of CPU) is not part of the steady state measured
	}
	dispatched := time.Since(t0)

	// The table's jobs: every job of the job config that Prow would run
	// with agent kubernetes, on the cluster the table says.
	var targets []target
	perCluster := map[string]int{}
	for _, j := range w.jobs {
		a, ok := d.Lookup(j.name)
		if j.agent != jobs.Agent {
			if ok {
				t.Errorf("job %s of agent %s is in the table", j.name, j.agent)
			}
			continue
		}
		if !ok {
			t.Fatalf("job %s of the job config is not in the table", j.name)
		}
		targets = append(targets, target{name: j.name, typ: string(j.typ), labels: j.labelsJSON(), want: a.Cluster})
		perCluster[a.Cluster]++
	}
	if st := d.Status(); st.TableSize != len(targets) {
		t.Fatalf("table of %d rows, want %d (the job config's kubernetes jobs)", st.TableSize, len(targets))
	}
	var drainable []string
	if cfg.drainEvery > 0 {
		drainable = drainableClusters(t, d, slices.Sorted(maps.Keys(perCluster)))
	}
	setup := time.Since(setupStart)

	tmpl := newReviewTemplate(t)
	var moving atomic.Int64 // drain operations started plus finished: odd while one runs
	var ourDials, nullDials atomic.Int64
	ours := window{client: newClient(tlsConfig, &ourDials, cfg.maxInFlight), dials: &ourDials, url: "https://" + addr + admission.MutatePath,
		tmpl: tmpl, d: d, targets: targets, newFraction: cfg.newFraction, rate: cfg.rate, maxInFlight: cfg.maxInFlight, moving: &moving}
	modes := []mode{modeOurs}
	if cfg.drainEvery > 0 {
		modes = append(modes, modeDraining)
	}
	var null window
	if cfg.null {
		modes = append(modes, modeNull)
		// The same reviews of the table's jobs (no new jobs), each answer checked to allow without a patch.
		unpatched := make([]target, len(targets))
		for i, tg := range targets {
			tg.want = oldCluster
			unpatched[i] = tg
		}
		nullAddr, stopNull := startServer(t, certDir, tlsConfig, nullHandler{})
		defer func() {
			if err := stopNull(); err != nil {
				t.Errorf("null webhook server: %v", err)
			}
		}()
		null = window{client: newClient(tlsConfig, &nullDials, cfg.maxInFlight), dials: &nullDials, url: "https://" + nullAddr + admission.MutatePath,
			tmpl: tmpl, targets: unpatched, rate: cfg.rate, maxInFlight: cfg.maxInFlight}
	}

	// The windows: each mode in turn, round after round; each client's
	// first window starts with its warm-up.
	sum := summary{modes: map[mode]*result{}}
	for _, m := range modes {
		sum.modes[m] = &result{newJobs: map[string]string{}}
	}
	var handledBefore []*dto.Bucket // the webhook's own latency histogram when the warm-up ended
	stopProfile := func() error { return nil }
	n, length := cfg.rounds()
	for r := range n {
		p99s := map[mode]time.Duration{}
		for _, m := range modes {
			win := ours
			if m == modeNull {
				win = null
			}
			win.length, win.tag = length, fmt.Sprintf("%03d%d", r, m)
			if r == 0 && (m == modeOurs || m == modeNull) {
				win.warmup = cfg.warmup
			}
			if r == 0 && m == modeOurs {
				win.measuring = func() { handledBefore = handleBuckets(t, reg); stopProfile = startCPUProfile(cfg.cpuProfile) }
			}
			var loop *drainLoop
			var runsBefore map[string]float64
			if m == modeDraining {
				runsBefore = counterBy(t, reg, "prowjob_dispatcher_engine_runs_total", "operation")
				loop = startDrainLoop(d, drainable, cfg.drainEvery, &moving)
			}
			runtime.GC()
			res := win.run()
			if loop != nil {
				sum.drains.add(loop.stop())
				if after := counterBy(t, reg, "prowjob_dispatcher_engine_runs_total", "operation"); after != nil {
					if sum.runs == nil {
						sum.runs = map[string]float64{}
					}
					for op, v := range after {
						if dv := v - runsBefore[op]; dv > 0 {
							sum.runs[op] += dv
						}
					}
				}
			}
			slices.Sort(res.latencies)
			p99s[m] = pct(res.latencies, 0.99)
			sum.modes[m].add(res)
		}
		sum.rounds = append(sum.rounds, p99s)
	}
	if err := stopProfile(); err != nil {
		t.Errorf("CPU profile: %v", err)
	}
	handled := subtractBuckets(handleBuckets(t, reg), handledBefore)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if cfg.heapProfile != "" {
		writeHeapProfile(t, cfg.heapProfile)
	}
	if err := stopServer(); err != nil {
		t.Errorf("server: %v", err)
	}
	for _, res := range sum.modes {
		slices.Sort(res.latencies)
		slices.Sort(res.newLatencies)
		slices.Sort(res.warmupLatencies)
		slices.Sort(res.hitLatencies)
	}

	stateMode := "state dir"
	if api != nil {
		stateMode = "state in a real kube-apiserver (--state-backend=kubernetes, one replica leading)"
	}
	t.Logf("load: real *dispatch.Dispatcher, %s, %d jobs in %d files (%d presubmits, %d periodics), %d table rows over %d clusters %s",
		stateMode, len(w.jobs), w.files, w.presubmits, w.periods, len(targets), w.clusters, clusterCounts(perCluster))
	t.Logf("setup %v: workload generated and written %v, dispatch.New (configs and job config loaded) %v, first dispatch until ready %v",
		setup.Round(time.Millisecond), wrote.Round(time.Millisecond), loaded.Round(time.Millisecond), dispatched.Round(time.Millisecond))
	t.Logf("sending %d req/s for %v to each of %v, in %d round(s) of windows of %v, after a %v warm-up ramping up to that rate, over TLS to 127.0.0.1, %.2f%% of ours for jobs the table lacks",
		cfg.rate, cfg.duration, modes, n, length.Round(time.Millisecond), cfg.warmup, cfg.newFraction*100)
	for _, m := range modes {
		res := sum.modes[m]
		t.Logf("%s: sent %d (%d of the warm-up, %d for new jobs), answered correctly %d (%d of them raced a drain), wrong answers %d, errors %d, dropped (max in flight) %d (%d of them in the warm-up)",
			m, res.sent, res.warmupSent, res.newSent, res.ok, res.raced, res.wrong, res.failed, res.dropped, res.warmupDropped)
		if len(res.warmupLatencies) > 0 {
			t.Logf("%s: warm-up latency (the client opening %d connections): p50 %v, p99 %v, max %v",
				m, res.dials, pct(res.warmupLatencies, 0.50), pct(res.warmupLatencies, 0.99), pct(res.warmupLatencies, 1))
		}
		t.Logf("%s: throughput %.1f req/s over %v after the warm-up; latency p50 %v, p90 %v, p99 %v, p99.9 %v, max %v; connections opened after the warm-up %d",
			m, float64(len(res.latencies))/res.elapsed.Seconds(), res.elapsed.Round(time.Millisecond),
			pct(res.latencies, 0.50), pct(res.latencies, 0.90), pct(res.latencies, 0.99), pct(res.latencies, 0.999), pct(res.latencies, 1), res.measuredDials)
		if m == modeNull {
			continue
		}
		t.Logf("%s: latency of jobs of the table: p50 %v, p99 %v, max %v over %d", m,
			pct(res.hitLatencies, 0.50), pct(res.hitLatencies, 0.99), pct(res.hitLatencies, 1), len(res.hitLatencies))
		t.Logf("%s: latency of new jobs (delta-assigned): p50 %v, p99 %v, p99.9 %v, max %v over %d", m,
			pct(res.newLatencies, 0.50), pct(res.newLatencies, 0.99), pct(res.newLatencies, 0.999), pct(res.newLatencies, 1), len(res.newLatencies))
	}
	t.Logf("inside the server, the admission handler (prowjob_dispatcher_admission_duration_seconds: decoding the ProwJob, deciding, patching) took %s",
		bucketShares(handled, 0.00025, 0.001))
	if cfg.drainEvery > 0 {
		t.Logf("drain loop, one operation every %v over %v: %s", cfg.drainEvery, drainable, sum.drains)
		if sum.runs == nil {
			t.Logf("drain loop: engine runs not counted (no prowjob_dispatcher_engine_runs_total)")
		} else {
			t.Logf("drain loop: engine runs by operation over the draining windows %v", sum.runs)
		}
	}
	t.Logf("memory (client, server and dispatcher in one process): RSS %s, peak RSS %s, heap in use %d MiB, heap objects %d, GC cycles %d",
		procStatus("VmRSS"), procStatus("VmHWM"), ms.HeapInuse>>20, ms.HeapObjects, ms.NumGC)
	if cfg.null {
		logRatios(t, sum, modes)
	}
	for _, m := range modes {
		res := sum.modes[m]
		if res.firstErr != nil {
			t.Logf("%s: first error: %v", m, res.firstErr)
		}
		// Requests dropped while the client opens its connections in the
		// warm-up are reported, not failures; any after it are.
		if n := res.dropped - res.warmupDropped; res.failed > 0 || res.wrong > 0 || n > 0 {
			t.Errorf("%s: %d errors, %d wrong answers, %d dropped after the warm-up", m, res.failed, res.wrong, n)
		}
	}

	// Every review that reached the server was decided, and placed the ProwJob.
	counts, err := gatherCounters(reg)
	if err != nil {
		t.Fatal(err)
	}
	var admissions, placed float64
	for outcome, n := range counts["prowjob_dispatcher_admissions_total"] {
		admissions += n
		if outcome == string(admission.OutcomePatched) || outcome == string(admission.OutcomeUnchanged) {
			placed += n
		}
	}
	ourSent, newJobs := 0, map[string]string{}
	for _, m := range []mode{modeOurs, modeDraining} {
		if res := sum.modes[m]; res != nil {
			ourSent += res.sent - res.dropped
			maps.Copy(newJobs, res.newJobs)
		}
	}
	if want := float64(ourSent); admissions != want || placed != want {
		t.Errorf("the webhook counted %v admissions, %v of them patched or unchanged, want %v: %v", admissions, placed, want, counts["prowjob_dispatcher_admissions_total"])
	}
	if got, want := counts["prowjob_dispatcher_delta_assignments_total"][""], float64(len(newJobs)); got != want {
		t.Errorf("the dispatcher counted %v delta assignments, want %v", got, want)
	}
	for job := range newJobs { // where they are now: a drain may have moved them since
		a, _ := d.Lookup(job)
		newJobs[job] = a.Cluster
	}

	// The delta assignments persist: a dispatcher started on the same
	// state dir (or shared state), as after a restart, has them.
	if err := stopDispatcher(); err != nil {
		t.Errorf("saving the state at shutdown: %v", err)
	}
	t0 = time.Now()
	opts.Registerer = nil
	if api != nil {
		st = api.backend(t, "load-0")
	} else {
		files, err := store.NewBackend(filepath.Join(dir, "state"))
		if err != nil {
			t.Fatal(err)
		}
		st = files
	}
	restarted, err := dispatch.New(context.Background(), opts, st)
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for job, cluster := range newJobs {
		if a, ok := restarted.Lookup(job); !ok || a.Cluster != cluster {
			lost++
		}
	}
	t.Logf("restart on the same state: %d of %d delta assignments kept, table of %d rows, in %v",
		len(newJobs)-lost, len(newJobs), restarted.Status().TableSize, time.Since(t0).Round(time.Millisecond))
	if lost > 0 {
		t.Errorf("%d of %d delta assignments lost or moved across a restart", lost, len(newJobs))
	}
	return sum
}

// logRatios logs the ratio of each mode's p99 to the null webhook's, per
// round and their median, and over all windows merged.
func logRatios(t *testing.T, sum summary, modes []mode) {
	t.Helper()
	null := sum.modes[modeNull]
	for _, m := range modes {
		if m == modeNull {
			continue
		}
		var per []float64
		var parts []string
		for _, p99s := range sum.rounds {
			if p99s[modeNull] > 0 {
				r := float64(p99s[m]) / float64(p99s[modeNull])
				per = append(per, r)
				parts = append(parts, fmt.Sprintf("%.2f (%v / %v)", r, p99s[m], p99s[modeNull]))
			}
		}
		if len(per) == 0 {
			continue
		}
		all := sum.modes[m]
		t.Logf("p99 ratio, %s / null webhook: median %.2f over %d round(s): %s; all windows merged %.2f (%v / %v); the aim is 1.3 at most",
			m, median(per), len(per), strings.Join(parts, ", "),
			float64(pct(all.latencies, 0.99))/float64(pct(null.latencies, 0.99)), pct(all.latencies, 0.99), pct(null.latencies, 0.99))
	}
}

// pct returns the p quantile of sorted latencies l (0 for none).
func pct(l []time.Duration, p float64) time.Duration {
	if len(l) == 0 {
		return 0
	}
	return l[min(len(l)-1, int(p*float64(len(l))))]
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// startServer starts the webhook server admission.NewServer builds, with
// handler, on a free loopback port, and waits until it completes a TLS
// handshake. stop stops it, draining requests in flight.
func startServer(t *testing.T, certDir string, tlsConfig *tls.Config, handler ctrladmission.Handler) (addr string, stop func() error) {
	t.Helper()
	port := freePort(t)
	srv, err := admission.NewServer(admission.ServerOptions{Host: "127.0.0.1", Port: port, CertDir: certDir, Logger: logr.Discard()}, handler)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var srvErr error
	done := make(chan struct{})
	go func() { defer close(done); srvErr = srv.Start(ctx) }()
	addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	waitListening(t, addr, tlsConfig, done, &srvErr)
	return addr, sync.OnceValue(func() error { cancel(); <-done; return srvErr })
}

// window is one measured window: a client and the webhook it sends to.
type window struct {
	client *http.Client
	dials  *atomic.Int64 // connections the client opened
	url    string
	tmpl   *reviewTemplate
	// d, for our webhook, says where a job's answer should leave it;
	// without it (the null webhook) the target's want does.
	d           *dispatch.Dispatcher
	targets     []target
	newFraction float64
	rate        int
	maxInFlight int
	// warmup, when above 0, ramps the rate up first (see schedule).
	warmup, length time.Duration
	tag            string        // makes the names of new jobs unique across windows
	moving         *atomic.Int64 // drain operations started plus finished (see drainLoop)
	measuring      func()        // called when the warm-up ends; may be nil
}

// run sends open loop, each request when it is due whether or not earlier
// ones have been answered: in the warm-up at a rate ramping up linearly
// from zero to the rate, so that the client opens its connections as it
// needs them rather than all at once, then at the rate for the window's
// length. A share newFraction of the requests after the warm-up are for
// jobs the table lacks, each a new name. An answer must leave the job where
// d's table has it just before or just after the request; one that matches
// neither while a drain operation ran is counted as raced, not wrong.
func (w window) run() result {
	warm, total, due := schedule(w.rate, w.warmup, w.length)
	var (
		mu  sync.Mutex
		res = result{latencies: make([]time.Duration, 0, total), newJobs: map[string]string{}}
		wg  sync.WaitGroup
	)
	slots := make(chan struct{}, w.maxInFlight)
	start := time.Now()
	measuredFrom := start
	dialsBefore := w.dials.Load()
	for i := range total {
		if wait := time.Until(start.Add(due(i))); wait > 0 {
			time.Sleep(wait)
		}
		if i == warm {
			measuredFrom = time.Now()
			mu.Lock()
			res.dials = w.dials.Load() - dialsBefore
			mu.Unlock()
			if w.measuring != nil {
				w.measuring()
			}
		}
		tg := w.targets[i%len(w.targets)]
		j := i - warm
		isWarmup := j < 0
		isNew := !isWarmup && int(float64(j+1)*w.newFraction) > int(float64(j)*w.newFraction)
		if isNew { // a job of the same shape, unknown to the table
			tg.name, tg.typ, tg.want = fmt.Sprintf("pull-ci-openshift-loadtest-new%s%07d-e2e", w.tag, j), string(jobs.Presubmit), ""
		}
		res.sent++
		if isNew {
			res.newSent++
		}
		if isWarmup {
			res.warmupSent++
		}
		select {
		case slots <- struct{}{}:
		default:
			mu.Lock()
			res.dropped++
			if isWarmup {
				res.warmupDropped++
			}
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			body := w.tmpl.body(&tg, "uid-"+w.tag+"-"+strconv.Itoa(i))
			var before string
			var movingBefore int64
			if w.d != nil {
				movingBefore = w.moving.Load()
				a, _ := w.d.Lookup(tg.name)
				before = a.Cluster
			}
			t0 := time.Now()
			got, err := post(w.client, w.url, body)
			took := time.Since(t0)
			want, raced := tg.want, false
			if w.d != nil {
				a, _ := w.d.Lookup(tg.name) // the cluster the dispatcher now reports
				want = a.Cluster
				if err == nil && got != want && !isNew && got == before {
					want = got // moved by a drain after the answer
				}
				if m := w.moving.Load(); err == nil && got != want && (m != movingBefore || m%2 == 1) {
					want, raced = got, true // moved by a drain during the request
				}
			}
			if err == nil && got != want {
				err = &wrongAnswer{fmt.Sprintf("job %s: the answer leaves it on %q, the table says %q", tg.name, got, want)}
			}
			mu.Lock()
			defer mu.Unlock()
			var wrong *wrongAnswer
			switch {
			case err == nil:
				res.ok++
				if raced {
					res.raced++
				}
			case errors.As(err, &wrong):
				res.wrong++
			default:
				res.failed++
			}
			switch {
			case err != nil && wrong == nil:
			case isWarmup:
				res.warmupLatencies = append(res.warmupLatencies, took)
			case isNew:
				res.latencies = append(res.latencies, took)
				res.newLatencies = append(res.newLatencies, took)
				res.newJobs[tg.name] = want
			default:
				res.latencies = append(res.latencies, took)
				res.hitLatencies = append(res.hitLatencies, took)
			}
			if err != nil && res.firstErr == nil {
				res.firstErr = err
			}
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(measuredFrom)
	res.measuredDials = w.dials.Load() - dialsBefore - res.dials
	return res
}

// schedule returns the number of requests of the warm-up and in all, and
// when request i is due after the start: the warm-up ramps the rate up
// linearly from zero to rate over warmup, then rate holds for duration.
func schedule(rate int, warmup, duration time.Duration) (warm, total int, due func(i int) time.Duration) {
	// Ramping up over W seconds to R per second sends R*W/2 requests,
	// request i at W*sqrt(i/warm).
	warm = int(float64(rate) * warmup.Seconds() / 2)
	total = warm + int(float64(rate)*duration.Seconds())
	interval := time.Second / time.Duration(rate)
	return warm, total, func(i int) time.Duration {
		if i < warm {
			return time.Duration(float64(warmup) * math.Sqrt(float64(i)/float64(warm)))
		}
		return warmup + time.Duration(i-warm)*interval
	}
}

// newClient returns the harness's HTTPS client, keeping up to maxIdle
// connections, counting those it opens in dials.
func newClient(tlsConfig *tls.Config, dials *atomic.Int64, maxIdle int) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		TLSClientConfig:     tlsConfig,
		MaxIdleConns:        maxIdle,
		MaxIdleConnsPerHost: maxIdle,
		IdleConnTimeout:     time.Minute,
	}}
}

// nullHandler is the null webhook's admission handler: it allows every
// request and does no work.
type nullHandler struct{}

func (nullHandler) Handle(context.Context, ctrladmission.Request) ctrladmission.Response {
	return ctrladmission.Allowed("")
}

type wrongAnswer struct{ msg string }

func (w *wrongAnswer) Error() string { return w.msg }

// post sends one review and returns the cluster the answer leaves the
// ProwJob on: oldCluster without a patch, else the cluster the patch sets.
// An answer that denies, or patches anything but spec.cluster, is wrong.
func post(client *http.Client, url string, body []byte) (string, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, data)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(data, &review); err != nil {
		return "", err
	}
	r := review.Response
	if r == nil || !r.Allowed {
		return "", &wrongAnswer{fmt.Sprintf("not allowed: %s", data)}
	}
	if len(r.Patch) == 0 {
		return oldCluster, nil
	}
	var ops []struct {
		Op    string `json:"op"`
		Path  string `json:"path"`
		Value string `json:"value"`
	}
	if err := json.Unmarshal(r.Patch, &ops); err != nil || len(ops) != 1 || ops[0].Op != "replace" || ops[0].Path != "/spec/cluster" {
		return "", &wrongAnswer{fmt.Sprintf("patch %s, want one replace of /spec/cluster", r.Patch)}
	}
	if ops[0].Value == oldCluster {
		return "", &wrongAnswer{fmt.Sprintf("patched a ProwJob already on %s: %s", oldCluster, r.Patch)}
	}
	return ops[0].Value, nil
}

// waitReady waits until the dispatcher has a table in force.
func waitReady(t testing.TB, d *dispatch.Dispatcher) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(10 * time.Millisecond) {
		st := d.Status()
		switch {
		case st.Ready:
			return
		case st.LastError != "":
			t.Fatalf("the first dispatch failed: %s", st.LastError)
		case time.Now().After(deadline):
			t.Fatalf("the dispatcher is not ready after 5m: %s", st.Reason)
		}
	}
}

// gatherCounters returns the registry's counters: name -> value of the
// "outcome" label ("" without one) -> value, summed over the other labels.
func gatherCounters(reg *prometheus.Registry) (map[string]map[string]float64, error) {
	mfs, err := reg.Gather()
	if err != nil {
		return nil, err
	}
	out := map[string]map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetCounter() == nil {
				continue
			}
			key := ""
			for _, lp := range m.GetLabel() {
				if lp.GetName() == "outcome" {
					key = lp.GetValue()
				}
			}
			if out[mf.GetName()] == nil {
				out[mf.GetName()] = map[string]float64{}
			}
			out[mf.GetName()][key] += m.GetCounter().GetValue()
		}
	}
	return out, nil
}

// clusterCounts formats rows per cluster: "(build01 612, build02 180, ...)".
func clusterCounts(m map[string]int) string {
	names := make([]string, 0, len(m))
	for c := range m {
		names = append(names, c)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, c := range names {
		parts[i] = fmt.Sprintf("%s %d", c, m[c])
	}
	return "(" + strings.Join(parts, ", ") + ")"
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

// waitListening waits until the webhook server completes a TLS handshake.
func waitListening(t testing.TB, addr string, config *tls.Config, done <-chan struct{}, err *error) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-done:
			t.Fatalf("server stopped: %v", *err)
		default:
		}
		if c, err := tls.Dial("tcp", addr, config); err == nil {
			c.Close()
			return
		}
	}
	t.Fatal("the webhook server did not listen within 10s")
}

// writeHeapProfile writes the live heap, after a GC, to path.
func writeHeapProfile(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	runtime.GC()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		t.Fatalf("writing the heap profile: %v", err)
	}
}

// startCPUProfile profiles the CPU into path until the returned func is
// called; with no path it does nothing.
func startCPUProfile(path string) (stop func() error) {
	if path == "" {
		return func() error { return nil }
	}
	f, err := os.Create(path)
	if err != nil {
		return func() error { return err }
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return func() error { return fmt.Errorf("CPU profile: %w", err) }
	}
	return func() error {
		pprof.StopCPUProfile()
		return f.Close()
	}
}

// handleBuckets returns the cumulative buckets of the webhook's admission
// latency histogram.
func handleBuckets(t *testing.T, reg *prometheus.Registry) []*dto.Bucket {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "prowjob_dispatcher_admission_duration_seconds" && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetHistogram().GetBucket()
		}
	}
	return nil
}

// subtractBuckets returns the counts of a less those of b (an earlier
// gathering of the same histogram; nil counts as zero).
func subtractBuckets(a, b []*dto.Bucket) []*dto.Bucket {
	out := make([]*dto.Bucket, len(a))
	for i, bk := range a {
		n := bk.GetCumulativeCount()
		if i < len(b) {
			n -= b[i].GetCumulativeCount()
		}
		out[i] = &dto.Bucket{UpperBound: bk.UpperBound, CumulativeCount: &n}
	}
	return out
}

// bucketShares says which share of a histogram's observations was at most
// each bound (bounds of its buckets), and the bucket holding its p99.
func bucketShares(buckets []*dto.Bucket, bounds ...float64) string {
	if len(buckets) == 0 {
		return "(no histogram)"
	}
	total := float64(buckets[len(buckets)-1].GetCumulativeCount()) // the last bucket is at most 1 s
	if total == 0 {
		return "(no observations)"
	}
	var parts []string
	for _, bound := range bounds {
		for _, bk := range buckets {
			if bk.GetUpperBound() == bound {
				parts = append(parts, fmt.Sprintf("<= %v for %.2f%%", time.Duration(bound*float64(time.Second)), 100*float64(bk.GetCumulativeCount())/total))
			}
		}
	}
	for _, bk := range buckets {
		if float64(bk.GetCumulativeCount()) >= 0.99*total {
			parts = append(parts, fmt.Sprintf("p99 <= %v", time.Duration(bk.GetUpperBound()*float64(time.Second))))
			break
		}
	}
	return strings.Join(parts, ", ") + fmt.Sprintf(" of %.0f admissions", total)
}
