package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// The knobs of TestHAFaults, read from the environment.
const (
	// faultsSeedEnv replays a run: the seed picks the order and the
	// timing of the faults and the writes (the machine's timing still varies).
	faultsSeedEnv = "E2E_FAULTS_SEED"
	// faultsDurationEnv is how long faults go on being injected once
	// each kind was injected once (default faultsDuration); raise it to soak.
	faultsDurationEnv = "E2E_FAULTS_DURATION"
	// faultsOutageEnv is how long the one long API server outage lasts
	// (default faultsOutage; 60s is the probe of issue 18).
	faultsOutageEnv = "E2E_FAULTS_OUTAGE"
	// faultsNetnsEnv=0 cuts a replica off by SIGSTOP instead of a network namespace.
	faultsNetnsEnv = "E2E_FAULTS_NETNS"
)

const (
	faultsDuration = 40 * time.Second
	faultsOutage   = 10 * time.Second
	// faultsLease is the replicas' Lease duration (shortened, so that a
	// SIGSTOP past it fits the time bound), faultsRenew their renew deadline.
	// Their difference is how long a leader's write may be in flight and
	// still land before another replica can take the Lease: writes are
	// fenced by time, and right after an API server restart a write took
	// over the 1 s this once was (older-term-write in CI). 2 s, 40% of the
	// Lease, is a wider share than the defaults' 3 s of 10 s.
	faultsLease = 5 * time.Second
	faultsRenew = 3 * time.Second
	// faultsSettle bounds how long after the faults stop the replicas may
	// take to elect one leader and agree, before agreement is checked.
	faultsSettle = 20 * time.Second
	// faultsWriteTimeout bounds one write through the HTTP API.
	faultsWriteTimeout = 8 * time.Second
)

// The kinds of fault TestHAFaults injects.
const (
	faultStopLeader     = "sigstop-leader"           // past its Lease, then SIGCONT
	faultKillLeader     = "sigkill-leader"           // then restarted
	faultKillInDrain    = "sigkill-leader-in-drain"  // while a drain it serves is in flight
	faultAPIRestart     = "apiserver-restart"        // down 1-4 s
	faultAPIOutage      = "apiserver-outage"         // down faultsOutageEnv
	faultCutReplica     = "cut-off-replica"          // network namespace link down, past the Lease
	faultStopReplica    = "sigstop-replica-fallback" // cut-off-replica without network namespaces
	faultStopFollower   = "sigstop-follower"         // 2-5 s
	writeReschedule     = "reschedule"
	writeDrain          = "drain"
	writeUndrain        = "undrain"
	valueDrained        = "drained"
	valueUndrained      = "undrained"
	faultsDrainTTL      = "30m"
	faultsRescheduleTTL = "30m"
)

// TestHAFaults is a randomized fault test in the spirit of Jepsen and
// etcd's robustness tests. Three replicas of the kubernetes state backend
// run on an API server of their own (the third, when it can be, inside a
// network namespace the test makes) under steady admissions sent to each
// replica's webhook and writes through the HTTP API (reschedules, drains,
// undrains, a drain racing a reschedule of a job to the cluster drained),
// while, in an order the seed picks: the leader is SIGSTOPped past its
// Lease, SIGKILLed (once during a drain it serves) and restarted; the API
// server is restarted, and once kept down for E2E_FAULTS_OUTAGE; a
// replica is cut off; a follower is stopped. A history of every admission
// answer and write is then checked:
//
//  1. every acknowledged write is visible on every replica within 2 s
//     after the faults stop;
//  2. no admission answers a blocked or unknown cluster for a movable job,
//     nor a cluster drained (a drain acknowledged before the admission was
//     sent, no undrain sent since): a drain is acknowledged once every live
//     replica has it in force, and answers of a replica the
//     acknowledgement names as unconfirmed, or of a faulted replica, are
//     counted and reported;
//  3. all replicas answer the same for every job once they settled;
//  4. no table shard is written by a replica after the Lease passed to
//     another, a shard's publication never goes back, and (once shards
//     carry a term) no shard carries a term older than one adopted.
//
// E2E_FAULTS_SEED replays a schedule; E2E_FAULTS_DURATION soaks longer.
func TestHAFaults(t *testing.T) {
	s := require(t)
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(faultsSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", faultsSeedEnv, v, err)
		}
		seed = n
	}
	duration := envDuration(t, faultsDurationEnv, faultsDuration)
	outage := envDuration(t, faultsOutageEnv, faultsOutage)
	t.Logf("seed %d (%s=%d replays this schedule); faults for at least %s, one API server outage of %s", seed, faultsSeedEnv, seed, duration, outage)

	work, err := os.MkdirTemp(s.workDir, "ha-faults-")
	if err != nil {
		t.Fatal(err)
	}
	startCtx := haContext(t, 2*time.Minute)
	apiServer, err := framework.StartAPIServerWith(startCtx, framework.APIServerOptions{AssetsDir: s.assets.Dir, WorkDir: work, Restartable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apiServer.Stop() })

	// The third replica in a network namespace of its own, when one can be made.
	var netns *framework.Netns
	tweak := func(i int, cfg *framework.ServeConfig) {
		cfg.ExtraArgs = append(cfg.ExtraArgs,
			"--leader-elect-lease-duration", faultsLease.String(),
			"--leader-elect-renew-deadline", faultsRenew.String(),
			"--leader-elect-retry-period", "500ms",
			"--max-drain-ttl", "1h")
	}
	if os.Getenv(faultsNetnsEnv) == "0" {
		t.Logf("%s=0: a replica is cut off by SIGSTOP", faultsNetnsEnv)
	} else if err := framework.NetnsSupported(startCtx); err != nil {
		t.Logf("no network namespaces here (%v): a replica is cut off by SIGSTOP instead", err)
	} else {
		var promURL string
		netns, promURL = faultsNetns(t, work, apiServer, s.prom.URL)
		base := tweak
		tweak = func(i int, cfg *framework.ServeConfig) {
			base(i, cfg)
			if i == 2 {
				cfg.Netns, cfg.Host = netns.Name, netns.NSIP
				cfg.Kube.Kubeconfig = filepath.Join(work, "kubeconfig-netns")
				cfg.PrometheusURL = promURL
				return
			}
			// Reached by the others (and by the replica in the namespace) at
			// the host's end of the veth, an address of this host.
			cfg.Kube.AdvertiseAddress = fmt.Sprintf("http://%s:%d", netns.HostIP, cfg.APIPort)
		}
	}

	h := newHAClusterWith(t, "ha-faults", apiServer, 3, tweak)
	leader := h.waitOneLeader(haStartTimeout)
	ctx := haContext(t, 10*time.Minute)
	terms := startTermWatch(ctx, t, apiServer.KubeconfigPath, h.ns)
	t.Logf("leader %s; replicas %s", leader, faultsReplicaAddrs(h))

	hist := &faultHistory{start: time.Now()}
	writer := &faultWriter{h: h, hist: hist, rng: rand.New(rand.NewPCG(seed, 1))}
	stop := make(chan struct{})
	var load sync.WaitGroup
	newJobs := startFaultAdmissions(ctx, h, hist, stop, &load)
	load.Add(1)
	go func() { defer load.Done(); writer.run(ctx, stop) }()

	injector := &faultInjector{h: h, hist: hist, writer: writer, netns: netns, outage: outage, rng: rand.New(rand.NewPCG(seed, 2))}
	injector.run(ctx, t, duration)
	close(stop)
	load.Wait()
	quiet := time.Now()
	t.Logf("faults stopped %s into the run; %d admissions and %d writes recorded", quiet.Sub(hist.start).Round(time.Millisecond), len(hist.admissions), len(hist.writes))

	// 1. Every acknowledged write is visible on every replica within 2 s.
	visibility := checkVisibility(ctx, h, hist, quiet)

	// 3. All replicas answer the same for every job once they settled.
	settled, leaderAfter := waitSettled(ctx, h, quiet)
	jobs := append(haKnownJobs(), newJobs()...)
	var disagree []string
	agreedAt := time.Now()
	for {
		_, disagree = agreement(ctx, h.live(), jobs)
		if len(disagree) == 0 || time.Since(quiet) > faultsSettle {
			break
		}
		time.Sleep(200 * time.Millisecond)
		agreedAt = time.Now()
	}
	if len(disagree) == 0 {
		t.Logf("after the faults, %s leads (settled %s after they stopped); the replicas agree on all %d jobs %s after they stopped",
			leaderAfter, settled.Round(time.Millisecond), len(jobs), agreedAt.Sub(quiet).Round(time.Millisecond))
	}

	// 2. No admission answered a blocked, drained or unknown cluster.
	admissionViolations, drained := checkAdmissions(hist)
	// 4. No write of an older term.
	terms.stop()
	termViolations, termSummary := terms.check()

	injected := hist.faultCounts()
	t.Logf("faults injected: %d %v", len(hist.faults), injected)
	t.Logf("writes: %s", hist.writeSummary())
	t.Logf("admissions: %s", hist.admissionSummary())
	t.Logf("terms: %s", termSummary)
	t.Logf("admissions naming a drained cluster, not counted as violations: %d answered by a replica the acknowledgement named unconfirmed, %d by a replica under a fault since",
		drained.unconfirmed, drained.afterFault)
	t.Logf("violations: acknowledged-write-visible-within-2s %d, admission-blocked-drained-unknown %d, replicas-agree %d, older-term-write %d",
		len(visibility), len(admissionViolations), len(disagree), len(termViolations))
	report := func(invariant string, vs []string) {
		if len(vs) > 0 {
			t.Errorf("invariant %q: %d violation(s) (seed %d), first:\n%s", invariant, len(vs), seed, strings.Join(vs[:min(len(vs), 15)], "\n"))
		}
	}
	report("every acknowledged write is visible on every replica within 2 s after the faults stop", visibility)
	report(fmt.Sprintf("no admission answers a blocked or unknown cluster for a movable job, nor one drained more than %s before (outside a fault of that replica)", haPropagation), admissionViolations)
	report(fmt.Sprintf("all replicas answer the same for every job (within %s after the faults stop)", faultsSettle), disagree)
	report("no write carries an older term than one already adopted", termViolations)
	if t.Failed() {
		t.Logf("fault schedule:\n%s", hist.faultLog())
		t.Logf("replica logs: %s", faultsLogPaths(h))
	}
}

// faultsNetns makes the network namespace of the third replica, the
// relays it reaches the API server and Prometheus through, and its
// kubeconfig (work/kubeconfig-netns); t.Cleanup removes them after the
// replicas are killed (cleanups run last first). It returns the namespace
// and the URL Prometheus is reached at from inside.
func faultsNetns(t *testing.T, work string, apiServer *framework.APIServer, promURL string) (*framework.Netns, string) {
	t.Helper()
	ctx := haContext(t, time.Minute)
	// Link-local addresses, distinct per test process, on interfaces of our own.
	octet := 20 + os.Getpid()%200
	tag := fmt.Sprintf("pjd%d", os.Getpid()%100000)
	n, err := framework.CreateNetns(ctx, "pjd-faults-"+strconv.Itoa(os.Getpid()), tag,
		fmt.Sprintf("169.254.%d.1", octet), fmt.Sprintf("169.254.%d.2", octet))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := n.Delete(); err != nil {
			t.Errorf("removing network namespace %s: %v", n.Name, err)
		}
	})
	relayTo := func(target string) *framework.Relay {
		r, err := framework.StartRelay(net.JoinHostPort(n.HostIP, "0"), target)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		return r
	}
	rest, err := clientcmd.BuildConfigFromFlags("", apiServer.KubeconfigPath)
	if err != nil {
		t.Fatalf("kubeconfig %s: %v", apiServer.KubeconfigPath, err)
	}
	u, err := url.Parse(rest.Host)
	if err != nil {
		t.Fatalf("kubeconfig %s: server %q: %v", apiServer.KubeconfigPath, rest.Host, err)
	}
	apiAddr := u.Host
	apiRelay := relayTo(apiAddr)
	host, _, _ := net.SplitHostPort(apiAddr)
	if err := framework.KubeconfigVia(apiServer.KubeconfigPath, filepath.Join(work, "kubeconfig-netns"), "https://"+apiRelay.Addr, host); err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(promURL)
	if err != nil {
		t.Fatal(err)
	}
	promVia := "http://" + relayTo(pu.Host).Addr
	t.Logf("network namespace %s: host end %s, namespace end %s; the API server (%s) and Prometheus relayed at %s and %s",
		n.Name, n.HostIP, n.NSIP, apiAddr, apiRelay.Addr, promVia)
	return n, promVia
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a positive duration (%v)", name, v, err)
	}
	return d
}

func faultsReplicaAddrs(h *haCluster) string {
	var out []string
	for i := range 3 {
		d := h.replica(i)
		where := "host"
		if d.Config.Netns != "" {
			where = "netns " + d.Config.Netns
		}
		out = append(out, fmt.Sprintf("%s at %s (%s)", d.Config.Kube.Replica, d.APIURL, where))
	}
	return strings.Join(out, ", ")
}

func faultsLogPaths(h *haCluster) string {
	var out []string
	for i := range 3 {
		out = append(out, h.replica(i).LogPath)
	}
	return strings.Join(out, " ")
}

// faultHistory is what happened: every admission answer, write and fault.
type faultHistory struct {
	start      time.Time
	mu         sync.Mutex
	admissions []admissionRecord
	writes     []*writeRecord
	faults     []faultRecord
}

type admissionRecord struct {
	replica, job, cluster, err string
	sent, answered             time.Time
}

type writeRecord struct {
	kind, key, value string // reschedule job -> cluster; drain/undrain cluster -> drained/undrained
	replica          string
	sent, done       time.Time
	code             int
	body, servedBy   string
	err              string
	acked            bool
	note             string   // "race", "during sigkill"
	unconfirmed      []string // of an acknowledged drain: the replicas that had not confirmed it
}

type faultRecord struct {
	kind, target, note string
	start, end         time.Time
}

func (hi *faultHistory) at(t time.Time) string {
	return "+" + t.Sub(hi.start).Round(time.Millisecond).String()
}

func (hi *faultHistory) faultCounts() map[string]int {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	out := map[string]int{}
	for _, f := range hi.faults {
		out[f.kind]++
	}
	return out
}

func (hi *faultHistory) faultLog() string {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	var b strings.Builder
	for _, f := range hi.faults {
		fmt.Fprintf(&b, "  %s..%s %s %s %s\n", hi.at(f.start), hi.at(f.end), f.kind, f.target, f.note)
	}
	return b.String()
}

func (hi *faultHistory) writeSummary() string {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	counts := map[string][2]int{}
	var races []string
	for _, w := range hi.writes {
		c := counts[w.kind]
		c[0]++
		if w.acked {
			c[1]++
		}
		counts[w.kind] = c
		if w.note != "" {
			races = append(races, fmt.Sprintf("%s %s %s->%s via %s at %s: %d %s%s", w.note, w.kind, w.key, w.value, w.replica, hi.at(w.sent), w.code, shorten(w.body, 120), w.err))
		}
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(counts)) {
		parts = append(parts, fmt.Sprintf("%s %d sent, %d acknowledged", k, counts[k][0], counts[k][1]))
	}
	out := strings.Join(parts, "; ")
	if len(races) > 0 {
		out += "\n  probes: " + strings.Join(races, "\n  probes: ")
	}
	return out
}

func (hi *faultHistory) admissionSummary() string {
	hi.mu.Lock()
	defer hi.mu.Unlock()
	per, outage := map[string][2]int{}, map[string][2]int{}
	for _, a := range hi.admissions {
		c := per[a.replica]
		c[0]++
		if a.err != "" {
			c[1]++
		}
		per[a.replica] = c
		if strings.Contains(duringLocked(hi, a.sent), faultAPIOutage) {
			c := outage[a.replica]
			c[0]++
			if a.err != "" {
				c[1]++
			}
			outage[a.replica] = c
		}
	}
	var parts, outageParts []string
	for _, r := range slices.Sorted(maps.Keys(per)) {
		parts = append(parts, fmt.Sprintf("%s %d (%d unanswered)", r, per[r][0], per[r][1]))
		outageParts = append(outageParts, fmt.Sprintf("%s %d (%d unanswered)", r, outage[r][0], outage[r][1]))
	}
	return strings.Join(parts, ", ") + "; during the API server outage: " + strings.Join(outageParts, ", ")
}

func shorten(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// faultsMovableJobs are the jobs no rule but balancing places.
func faultsMovableJobs() []string {
	var out []string
	for _, js := range balancedJobs {
		out = append(out, js...)
	}
	slices.Sort(out)
	return out
}

// startFaultAdmissions sends admissions to each replica's webhook, one
// sender per replica (a stopped replica holds up only its own), until stop:
// the movable jobs, the pinned and arm64 ones, and a new job every 3 s,
// whose first admissions go to every replica at once. It returns the new
// jobs sent so far.
func startFaultAdmissions(ctx context.Context, h *haCluster, hist *faultHistory, stop chan struct{}, wg *sync.WaitGroup) func() []string {
	var (
		mu      sync.Mutex
		created []string
		adm     admissionClient
	)
	admit := func(i int, job string) {
		d := h.replica(i)
		actx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		sent := time.Now()
		cluster, err := adm.admit(actx, d, h.ns, framework.ProwJob{Job: job, Labels: jobLabels[job]})
		r := admissionRecord{replica: d.Config.Kube.Replica, job: job, cluster: cluster, sent: sent, answered: time.Now()}
		if err != nil {
			r.err = err.Error()
		}
		hist.mu.Lock()
		hist.admissions = append(hist.admissions, r)
		hist.mu.Unlock()
	}
	jobs := append(faultsMovableJobs(), jobConsolePinned, jobOriginARM64)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := i; ; n++ {
				select {
				case <-stop:
					return
				case <-time.After(60 * time.Millisecond):
				}
				mu.Lock()
				pool := append(slices.Clone(jobs), created...)
				mu.Unlock()
				admit(i, pool[n%len(pool)])
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for n := 0; ; n++ {
			select {
			case <-stop:
				return
			case <-time.After(3 * time.Second):
			}
			job := fmt.Sprintf("pull-ci-openshift-fault%02d-main-unit", n)
			mu.Lock()
			created = append(created, job)
			mu.Unlock()
			var first sync.WaitGroup
			for i := range 3 {
				first.Add(1)
				go func() { defer first.Done(); admit(i, job) }()
			}
			first.Wait()
		}
	}()
	return func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(created)
	}
}

// faultWriter sends reschedules, drains and undrains through the HTTP API
// of a replica the seed picks (followers forward them to the leader), one
// at a time, and now and then a drain racing a reschedule to the cluster
// drained.
type faultWriter struct {
	h    *haCluster
	hist *faultHistory
	mu   sync.Mutex
	rng  *rand.Rand
	// drained is the cluster the last drain was sent for, until an undrain is sent.
	drained string
	ops     int
	// inflight are the racing reschedules still running.
	inflight sync.WaitGroup
}

func (w *faultWriter) intn(n int) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rng.IntN(n)
}

func (w *faultWriter) run(ctx context.Context, stop chan struct{}) {
	jobs := faultsMovableJobs()
	clusters := slices.Sorted(maps.Keys(usableClusters))
	defer w.inflight.Wait()
	for {
		select {
		case <-stop:
			return
		case <-time.After(time.Duration(400+w.intn(600)) * time.Millisecond):
		}
		w.mu.Lock()
		w.ops++
		op, via := w.rng.IntN(100), w.rng.IntN(3)
		race := w.ops == 3 || op >= 85
		job, to := jobs[w.rng.IntN(len(jobs))], clusters[w.rng.IntN(len(clusters))]
		w.mu.Unlock()
		d := w.h.replica(via)
		switch {
		case race:
			// A drain of a cluster racing a reschedule of a job to it.
			w.drainOrUndrain(ctx, d, "race", func(cluster string) {
				w.inflight.Add(1)
				go func() {
					defer w.inflight.Done()
					w.send(ctx, w.h.replica((via+1)%3), writeReschedule, job, cluster, "race")
				}()
			})
		case op < 50:
			w.send(ctx, d, writeReschedule, job, to, "")
		default:
			w.drainOrUndrain(ctx, d, "", nil)
		}
	}
}

// drainedCluster is the cluster the last drain was sent for, until an
// undrain is sent ("" when none).
func (w *faultWriter) drainedCluster() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.drained
}

// drainOrUndrain undrains the cluster drained last, or drains build02 or
// build03 (build01 alone has arm64: draining it is refused), through d;
// along, when set, runs with the drained cluster as the drain is sent.
func (w *faultWriter) drainOrUndrain(ctx context.Context, d *framework.ServeProcess, note string, along func(cluster string)) {
	w.mu.Lock()
	cluster, kind := w.drained, writeUndrain
	if cluster == "" {
		cluster, kind = []string{"build02", "build03"}[w.rng.IntN(2)], writeDrain
		w.drained = cluster
	} else {
		w.drained = ""
	}
	w.mu.Unlock()
	if kind == writeDrain && along != nil {
		along(cluster)
	}
	if kind == writeUndrain && along != nil {
		note = "" // a race is of a drain
	}
	w.send(ctx, d, kind, cluster, "", note)
}

// send makes one write through d's HTTP API and records it.
func (w *faultWriter) send(ctx context.Context, d *framework.ServeProcess, kind, key, to, note string) {
	r := &writeRecord{kind: kind, key: key, replica: d.Config.Kube.Replica, note: note, sent: time.Now()}
	var (
		ans apiAnswer
		err error
	)
	switch kind {
	case writeReschedule:
		r.value = to
		ans, err = post(ctx, d, http.MethodPost, api.ReschedulePath, api.RescheduleRequest{Job: key, Cluster: to, TTL: faultsRescheduleTTL, Reason: "e2e faults"}, faultsWriteTimeout)
	case writeDrain:
		r.value = valueDrained
		ans, err = post(ctx, d, http.MethodPost, api.DrainPath(key), api.DrainRequest{TTL: faultsDrainTTL, Reason: "e2e faults"}, faultsWriteTimeout)
	case writeUndrain:
		r.value = valueUndrained
		ans, err = post(ctx, d, http.MethodDelete, api.DrainPath(key), nil, faultsWriteTimeout)
	}
	r.done, r.code, r.body, r.servedBy = time.Now(), ans.code, ans.body, ans.servedBy
	if err != nil {
		r.err = err.Error()
	}
	r.acked = err == nil && ans.code == http.StatusOK
	if r.acked && kind == writeDrain {
		var plan api.DrainPlan
		if err := json.Unmarshal([]byte(ans.body), &plan); err == nil {
			r.unconfirmed = plan.Unconfirmed
		}
	}
	w.hist.mu.Lock()
	w.hist.writes = append(w.hist.writes, r)
	w.hist.mu.Unlock()
}

// faultInjector injects the faults, one at a time, healing each before
// the next.
type faultInjector struct {
	h      *haCluster
	hist   *faultHistory
	writer *faultWriter
	netns  *framework.Netns
	outage time.Duration
	rng    *rand.Rand
}

// between returns a duration in [lo, hi).
func (f *faultInjector) between(lo, hi time.Duration) time.Duration {
	return lo + time.Duration(f.rng.Int64N(int64(hi-lo)))
}

// run injects every kind once, in the order the seed picks, then kinds
// the seed picks until duration has passed since the first.
func (f *faultInjector) run(ctx context.Context, t *testing.T, duration time.Duration) {
	cut := faultCutReplica
	if f.netns == nil {
		cut = faultStopReplica
	}
	kinds := []string{faultStopLeader, faultKillLeader, faultKillInDrain, faultAPIRestart, cut, faultStopFollower}
	order := append(slices.Clone(kinds), faultAPIOutage)
	f.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	start := time.Now()
	for i := 0; i < len(order) || time.Since(start) < duration; i++ {
		if ctx.Err() != nil {
			return
		}
		time.Sleep(f.between(time.Second, 2500*time.Millisecond))
		kind := kinds[f.rng.IntN(len(kinds))]
		if i < len(order) {
			kind = order[i]
		}
		rec := f.inject(ctx, t, kind)
		t.Logf("fault %d at %s: %s %s (%s) %s", i+1, f.hist.at(rec.start), rec.kind, rec.target, rec.end.Sub(rec.start).Round(time.Millisecond), rec.note)
	}
}

// leader returns the index of the replica holding the Lease, or a live
// one the seed picks when the Lease cannot be read or its holder is gone.
func (f *faultInjector) leader(ctx context.Context) int {
	if holder, err := f.h.leaseHolder(ctx); err == nil {
		for i := range 3 {
			if d := f.h.replica(i); d.Config.Kube.Replica == holder && !d.Exited() {
				return i
			}
		}
	}
	return f.rng.IntN(3)
}

func (f *faultInjector) inject(ctx context.Context, t *testing.T, kind string) faultRecord {
	rec := faultRecord{kind: kind, start: time.Now()}
	f.hist.mu.Lock()
	f.hist.faults = append(f.hist.faults, rec)
	idx := len(f.hist.faults) - 1
	f.hist.mu.Unlock()
	finish := func() faultRecord {
		rec.end = time.Now()
		f.hist.mu.Lock()
		f.hist.faults[idx] = rec
		f.hist.mu.Unlock()
		return rec
	}
	setTarget := func(target string) {
		rec.target = target
		f.hist.mu.Lock()
		f.hist.faults[idx].target = target
		f.hist.mu.Unlock()
	}
	stopFor := func(i int, d time.Duration) {
		p := f.h.replica(i)
		setTarget(p.Config.Kube.Replica)
		if err := p.Signal(syscall.SIGSTOP); err != nil {
			rec.note = err.Error()
			return
		}
		time.Sleep(d)
		if err := p.Signal(syscall.SIGCONT); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	}
	switch kind {
	case faultStopLeader:
		stopFor(f.leader(ctx), faultsLease+f.between(500*time.Millisecond, 2500*time.Millisecond))
	case faultStopFollower:
		l := f.leader(ctx)
		stopFor((l+1+f.rng.IntN(2))%3, f.between(2*time.Second, 5*time.Second))
	case faultStopReplica:
		stopFor(2, faultsLease+f.between(time.Second, 3*time.Second))
	case faultCutReplica:
		setTarget(f.h.replica(2).Config.Kube.Replica)
		if err := f.netns.Cut(ctx); err != nil {
			t.Errorf("%s: %v", kind, err)
			break
		}
		time.Sleep(faultsLease + f.between(time.Second, 3*time.Second))
		if err := f.netns.Heal(ctx); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
	case faultKillLeader, faultKillInDrain:
		i := f.leader(ctx)
		p := f.h.replica(i)
		setTarget(p.Config.Kube.Replica)
		if kind == faultKillInDrain {
			// The drain goes to the leader itself; it is killed while the
			// drain is in flight (recorded by the writer as any other).
			delay := f.between(0, 300*time.Millisecond)
			if f.writer.drainedCluster() != "" {
				f.writer.drainOrUndrain(ctx, p, "", nil) // an undrain first: the probe is a drain
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				f.writer.drainOrUndrain(ctx, p, "sigkill-leader-in-drain", nil)
			}()
			time.Sleep(delay)
			rec.note = fmt.Sprintf("killed %s after the drain was sent", delay.Round(time.Millisecond))
			p.Kill()
			<-done
		} else {
			p.Kill()
		}
		time.Sleep(f.between(500*time.Millisecond, 2*time.Second))
		if err := f.restart(ctx, i); err != nil {
			t.Errorf("%s: restarting %s: %v", kind, p.Config.Kube.Replica, err)
		}
	case faultAPIRestart, faultAPIOutage:
		setTarget("kube-apiserver")
		down := f.outage
		if kind == faultAPIRestart {
			down = f.between(time.Second, 4*time.Second)
		}
		if err := f.h.apiServer.KillKubeAPIServer(); err != nil {
			t.Errorf("%s: %v", kind, err)
			break
		}
		time.Sleep(down)
		if err := f.h.apiServer.StartKubeAPIServer(); err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		rec.note = fmt.Sprintf("down %s", down.Round(time.Millisecond))
	}
	return finish()
}

// restart starts replica i again on its config and waits for its /readyz.
func (f *faultInjector) restart(ctx context.Context, i int) error {
	old := f.h.replica(i)
	d, err := old.Restart(ctx)
	if err != nil {
		return err
	}
	f.h.mu.Lock()
	f.h.replicas[i] = d
	f.h.mu.Unlock()
	return nil
}

// waitSettled waits (up to faultsSettle after quiet) until every replica
// runs and is ready and one leads; it returns how long after quiet that
// was and the leader.
func waitSettled(ctx context.Context, h *haCluster, quiet time.Time) (time.Duration, string) {
	for {
		holder, err := h.leaseHolder(ctx)
		leading, ready := 0, 0
		for _, d := range h.live() {
			if code, body, err := readyz(ctx, d); err == nil && code == http.StatusOK {
				ready++
				if replicationString(body, "role") == "leader" {
					leading++
				}
			}
		}
		if (err == nil && holder != "" && ready == 3 && leading == 1) || time.Since(quiet) > faultsSettle {
			return time.Since(quiet), holder
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// checkVisibility checks invariant 1: for each key (a rescheduled job, a
// drained or undrained cluster) with an acknowledged write, every replica
// serves, within 2 s after quiet, the value of the last acknowledged write
// or of a write that may have been ordered after it (one not acknowledged
// before it was sent). A miss is reported with how late it arrived
// (waiting up to faultsSettle) or what the replica answers.
func checkVisibility(ctx context.Context, h *haCluster, hist *faultHistory, quiet time.Time) []string {
	hist.mu.Lock()
	byKey := map[string][]*writeRecord{}
	for _, w := range hist.writes {
		k := w.kind
		if k == writeUndrain {
			k = writeDrain
		}
		byKey[k+" "+w.key] = append(byKey[k+" "+w.key], w)
	}
	hist.mu.Unlock()
	type expectation struct {
		kind, key  string
		acceptable map[string]bool
		last       *writeRecord
	}
	var exps []expectation
	for _, k := range slices.Sorted(maps.Keys(byKey)) {
		ws := byKey[k]
		var last *writeRecord
		for _, w := range ws {
			if w.acked && (last == nil || w.done.After(last.done)) {
				last = w
			}
		}
		if last == nil {
			continue
		}
		acceptable := map[string]bool{last.value: true}
		for _, w := range ws {
			if !w.acked || w.done.After(last.sent) {
				acceptable[w.value] = true
			}
		}
		kind, key, _ := strings.Cut(k, " ")
		exps = append(exps, expectation{kind: kind, key: key, acceptable: acceptable, last: last})
	}
	// What replica d serves for e.
	serves := func(d *framework.ServeProcess, e expectation) string {
		if e.kind == writeReschedule {
			a, err := assignmentOf(ctx, d, e.key)
			switch {
			case err != nil:
				return "error: " + err.Error()
			case a == nil:
				return "unknown job"
			case a.Reason != "override":
				return fmt.Sprintf("%s (reason %s)", a.Cluster, a.Reason)
			}
			return a.Cluster
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		list, err := d.API.Drains(cctx)
		if err != nil {
			return "error: " + err.Error()
		}
		for _, o := range list {
			if o.Cluster == e.key && o.Capacity == 0 {
				return valueDrained
			}
		}
		return valueUndrained
	}
	type miss struct {
		seen    time.Duration
		answer  string
		replica string
	}
	pending := map[string]*miss{} // replica + key -> last answer
	for _, e := range exps {
		for i := range 3 {
			r := h.replica(i).Config.Kube.Replica
			pending[r+" "+e.kind+" "+e.key] = &miss{seen: -1, replica: r}
		}
	}
	for {
		open := 0
		for _, e := range exps {
			for i := range 3 {
				d := h.replica(i)
				m := pending[d.Config.Kube.Replica+" "+e.kind+" "+e.key]
				if m.seen >= 0 {
					continue
				}
				if got := serves(d, e); e.acceptable[got] {
					m.seen = time.Since(quiet)
				} else {
					m.answer = got
					open++
				}
			}
		}
		if open == 0 || time.Since(quiet) > faultsSettle {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var out []string
	for _, e := range exps {
		for i := range 3 {
			r := h.replica(i).Config.Kube.Replica
			m := pending[r+" "+e.kind+" "+e.key]
			if m.seen >= 0 && m.seen <= haPropagation {
				continue
			}
			late := fmt.Sprintf("not within %s: serves %s", faultsSettle, m.answer)
			if m.seen >= 0 {
				late = fmt.Sprintf("only %s after the faults stopped (was %s)", m.seen.Round(time.Millisecond), m.answer)
			}
			w := e.last
			out = append(out, fmt.Sprintf("%s: %s %s -> %s (acknowledged at %s via %s, served by %s; acceptable %v): %s",
				r, w.kind, e.key, w.value, hist.at(w.done), w.replica, w.servedBy, slices.Sorted(maps.Keys(e.acceptable)), late))
		}
	}
	return out
}

// checkAdmissions checks invariant 2 on the history: an answered
// admission of a movable job (no rule but balancing places it, and no
// reschedule to that cluster was sent before the answer) names a usable
// cluster not drained when the admission was sent.
// An answer naming a drained cluster is a violation when it was sent after
// the drain was acknowledged, by a replica the acknowledgement did not name
// as unconfirmed and under no fault since: the others are counted in
// drainedAnswers and reported.
func checkAdmissions(hist *faultHistory) ([]string, drainedAnswers) {
	hist.mu.Lock()
	defer hist.mu.Unlock()
	movable := map[string]bool{}
	for _, j := range faultsMovableJobs() {
		movable[j] = true
	}
	// drainedBy returns the acknowledged drain of cluster in force at t
	// (nil when none): acknowledged before t, no undrain sent between.
	drainedBy := func(cluster string, t time.Time) *writeRecord {
		var last *writeRecord
		for _, w := range hist.writes {
			if w.key == cluster && w.kind == writeDrain && w.acked && w.done.Before(t) && (last == nil || w.done.After(last.done)) {
				last = w
			}
		}
		if last == nil {
			return nil
		}
		for _, w := range hist.writes {
			if w.key == cluster && w.kind == writeUndrain && w.sent.After(last.done) && w.sent.Before(t) {
				return nil
			}
		}
		return last
	}
	overridden := func(job, cluster string, t time.Time) bool {
		for _, w := range hist.writes {
			if w.kind == writeReschedule && w.key == job && w.value == cluster && w.sent.Before(t) {
				return true
			}
		}
		return false
	}
	var (
		out     []string
		drained drainedAnswers
	)
	for _, a := range hist.admissions {
		if a.err != "" || !(movable[a.job] || strings.Contains(a.job, "-fault")) {
			continue
		}
		problem := ""
		switch {
		case a.cluster == clusterBlocked:
			problem = "blocked"
		case a.cluster == defaultCluster:
			problem = "unknown (left as created, not patched)"
		case !usableClusters[a.cluster]:
			problem = "unknown"
		default:
			if w := drainedBy(a.cluster, a.sent); w != nil && !overridden(a.job, a.cluster, a.answered) {
				since, lag := w.done, a.sent.Sub(w.done)
				switch {
				case slices.Contains(w.unconfirmed, a.replica):
					// The acknowledgement named this replica as not
					// having confirmed the drain (it was stopped or cut off).
					drained.unconfirmed++
				case faultedLocked(hist, a.replica, since, a.answered):
					// A replica stopped or cut off answers from its table
					// until it catches up after the fault.
					drained.afterFault++
				default:
					problem = fmt.Sprintf("drained (drain acknowledged at %s, %s before the admission was sent)", hist.at(since), lag.Round(time.Millisecond))
				}
			}
		}
		if problem != "" {
			out = append(out, fmt.Sprintf("%s at %s: %s -> %s: %s cluster [during: %s]",
				a.replica, hist.at(a.sent), a.job, a.cluster, problem, duringLocked(hist, a.sent)))
		}
	}
	return out, drained
}

// drainedAnswers counts the answers naming a drained cluster that the
// checker does not call violations: those of a replica the drain's
// acknowledgement named as unconfirmed, and those of a replica that was
// stopped or cut off (or whose API server was down) since the
// acknowledgement.
type drainedAnswers struct {
	unconfirmed, afterFault int
}

// faultedLocked reports whether replica, or the API server, was under a
// fault that overlaps the time from from to to, widened by haPropagation
// after the fault's end (the time a replica has to catch up).
func faultedLocked(hi *faultHistory, replica string, from, to time.Time) bool {
	for _, f := range hi.faults {
		if f.target != replica && f.target != "kube-apiserver" {
			continue
		}
		end := f.end
		if end.IsZero() {
			end = to
		}
		if !f.start.After(to) && !end.Add(haPropagation).Before(from) {
			return true
		}
	}
	return false
}

// duringLocked is faultHistory.during for a caller holding mu.
func duringLocked(hi *faultHistory, t time.Time) string {
	var out []string
	for _, f := range hi.faults {
		if !t.Before(f.start) && (f.end.IsZero() || !t.After(f.end)) {
			out = append(out, f.kind+" "+f.target)
		}
	}
	return cmp.Or(strings.Join(out, ", "), "no fault")
}
