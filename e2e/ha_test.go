package e2e

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"
	prowapi "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/e2e/framework"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/httpapi"
)

// The figures of the HA load test.
const (
	haLoadRate     = 60 // ProwJobs created per second through the API server
	haLoadWorkers  = 16
	haLoadDuration = 30 * time.Second
	haKillAfter    = 5 * time.Second
	// haFailoverBound is how soon after the leader's death another replica must lead.
	haFailoverBound = 15 * time.Second
	// haPropagation is how soon a write must be served by every replica.
	haPropagation = 2 * time.Second
)

// TestHAFailoverUnderLoad runs three replicas behind one webhook (a
// round-robin balancer standing in for the Service), creates ProwJobs at
// 60/s for 30 s through the API server, and SIGKILLs the leader 5 s in
// while it runs dispatches. Another replica must lead within 15 s, no
// ProwJob create may fail, every ProwJob must carry the cluster the final
// table gives its job, and the live replicas must agree on every job
// within 2 s of the load's end. New jobs (not in the job config) appear
// every second, their first admissions sent at once, so that several
// replicas place the same job concurrently.
func TestHAFailoverUnderLoad(t *testing.T) {
	s := require(t)
	h := newHACluster(t, "ha-failover", s.api, 3)
	leader := h.waitOneLeader(haStartTimeout)
	t.Logf("leader %s", leader)
	h.startBalancer()
	ctx := haContext(t, 3*time.Minute)

	known := haKnownJobs()
	newJob := func(sec int) string { return fmt.Sprintf("pull-ci-openshift-ha%02d-main-unit", sec) }

	type created struct {
		name, job, cluster string
		at                 time.Duration // since the load started
	}
	var (
		mu         sync.Mutex
		results    []created
		createErrs []string
		latencies  []time.Duration
		errCount   atomic.Int64
	)
	ticks := make(chan int, 2*haLoadRate)
	var wg sync.WaitGroup
	loadStart := time.Now()
	for range haLoadWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range ticks {
				sec := int(time.Since(loadStart) / time.Second)
				var job string
				if i%haLoadRate < 3 { // a new job's first three admissions, at once
					job = newJob(i / haLoadRate)
				} else {
					pool := slices.Clone(known)
					for k := 0; k <= min(sec, i/haLoadRate); k++ {
						pool = append(pool, newJob(k))
					}
					job = pool[(i*7)%len(pool)]
				}
				t0 := time.Now()
				pj, err := h.apiServer.CreateProwJob(ctx, h.ns, framework.ProwJob{Job: job, Labels: jobLabels[job]})
				took := time.Since(t0)
				mu.Lock()
				latencies = append(latencies, took)
				if err != nil {
					errCount.Add(1)
					if len(createErrs) < 10 {
						createErrs = append(createErrs, fmt.Sprintf("%s at %s: %v", job, time.Since(loadStart).Round(time.Millisecond), err))
					}
				} else {
					results = append(results, created{name: pj.Name, job: job, cluster: pj.Spec.Cluster, at: t0.Sub(loadStart)})
				}
				mu.Unlock()
			}
		}()
	}

	// The leader dies mid-dispatch: dispatches are sent to it back to back,
	// and it is killed while one is in flight. From the kill on, the Lease
	// is polled until another replica holds it.
	type failover struct {
		at             time.Time // of the kill
		leader         string
		seen, acquired time.Duration
	}
	failedOver := make(chan failover, 1)
	go func() {
		time.Sleep(haKillAfter)
		_, d := h.replicaNamed(leader)
		var dispatches atomic.Int64
		stop := make(chan struct{})
		go func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := post(ctx, d, http.MethodPost, api.DispatchPath, struct{}{}, 10*time.Second); err != nil {
					return // it is dead
				}
				dispatches.Add(1)
			}
		}()
		time.Sleep(300 * time.Millisecond)
		d.Kill()
		f := failover{at: time.Now()}
		close(stop)
		t.Logf("SIGKILLed leader %s %s into the load, after %d dispatches it answered (one more in flight)",
			leader, f.at.Sub(loadStart).Round(time.Millisecond), dispatches.Load())
		for time.Since(f.at) < haFailoverBound+10*time.Second {
			if l, err := h.lease(ctx); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity != leader {
				f.leader, f.seen = *l.Spec.HolderIdentity, time.Since(f.at)
				if l.Spec.AcquireTime != nil {
					f.acquired = l.Spec.AcquireTime.Sub(f.at)
				}
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		failedOver <- f
	}()

	interval := time.Second / haLoadRate
	total := int(haLoadDuration / interval)
	for i := range total {
		if wait := time.Until(loadStart.Add(time.Duration(i) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		ticks <- i
	}

	close(ticks)
	wg.Wait()
	loadEnd := time.Now()
	loadTook := loadEnd.Sub(loadStart)

	f := <-failedOver
	killAt := f.at
	if f.leader == "" {
		t.Errorf("no replica took the Lease over from the killed leader %s within %s%s", leader, haFailoverBound+10*time.Second, h.logTails(3000))
	} else {
		t.Logf("failover: %s holds the Lease %s after %s was killed (the Lease's acquireTime is %s after the kill)",
			f.leader, f.seen.Round(time.Millisecond), leader, f.acquired.Round(time.Millisecond))
		if f.seen > haFailoverBound {
			t.Errorf("the new leader %s took over %s after the kill, want within %s", f.leader, f.seen.Round(time.Millisecond), haFailoverBound)
		}
		if got := h.waitOneLeader(10 * time.Second); got != f.leader {
			t.Errorf("after the failover the Lease went from %s to %s, and then to %s", leader, f.leader, got)
		}
	}

	mu.Lock()
	rate := float64(len(results)+int(errCount.Load())) / loadTook.Seconds()
	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	webhookLat := h.balancer.Latencies()
	t.Logf("load: %d ProwJobs created, %d errors in %s (%.1f/s); create latency p50 %s p99 %s max %s; webhook (balancer -> replica) p50 %s p99 %s max %s over %d admissions",
		len(results), errCount.Load(), loadTook.Round(time.Millisecond), rate,
		percentile(latencies, 50).Round(time.Microsecond), percentile(latencies, 99).Round(time.Microsecond), percentile(latencies, 100).Round(time.Microsecond),
		percentile(webhookLat, 50).Round(time.Microsecond), percentile(webhookLat, 99).Round(time.Microsecond), percentile(webhookLat, 100).Round(time.Microsecond), len(webhookLat))
	t.Logf("balancer: served %v, %d retried on another replica, %d answered by none", h.balancer.Served(), h.balancer.Retries(), h.balancer.Failures())
	if n := errCount.Load(); n > 0 {
		t.Errorf("%d ProwJob creates failed, first: %s", n, strings.Join(createErrs, "\n"))
	}
	if rate < 50 {
		t.Errorf("the load reached %.1f ProwJobs/s, want at least 50", rate)
	}
	mu.Unlock()

	// Every live replica answers the same cluster for every job within 2 s.
	jobs := map[string]bool{}
	for _, r := range results {
		jobs[r.job] = true
	}
	live := h.live()
	var (
		final    map[string]string
		disagree []string
	)
	for {
		final, disagree = agreement(ctx, live, slices.Sorted(maps.Keys(jobs)))
		if len(disagree) == 0 || time.Since(loadEnd) > haPropagation {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	sort.Strings(disagree)
	if len(disagree) > 0 {
		t.Errorf("%d of %d jobs not answered alike by the live replicas %s within %s of the load's end:\n%s",
			len(disagree), len(jobs), names(live), haPropagation, strings.Join(disagree, "\n"))
	} else {
		t.Logf("the live replicas %s answer the same cluster for all %d jobs, %s after the load ended",
			names(live), len(jobs), time.Since(loadEnd).Round(time.Millisecond))
	}

	// Every ProwJob, read back from the API server, has its job's cluster.
	var list prowapi.ProwJobList
	if err := h.apiServer.Client.List(ctx, &list, client.InNamespace(h.ns)); err != nil {
		t.Fatal(err)
	}
	stored := map[string]string{}
	for _, pj := range list.Items {
		stored[pj.Name] = pj.Spec.Cluster
	}
	type wrong struct {
		n, unadmitted int
		examples      []string
	}
	wrongByJob := map[string]*wrong{}
	for _, r := range results {
		got, ok := stored[r.name]
		want, known := final[r.job]
		if !known {
			continue // reported above
		}
		if !ok || got != want {
			w := wrongByJob[r.job]
			if w == nil {
				w = &wrong{}
				wrongByJob[r.job] = w
			}
			w.n++
			if got == defaultCluster {
				w.unadmitted++
			}
			if len(w.examples) < 3 {
				w.examples = append(w.examples, fmt.Sprintf("%s created %s into the load (kill at %s) on %q", r.name, r.at.Round(time.Millisecond), killAt.Sub(loadStart).Round(time.Millisecond), got))
			}
		}
	}
	for _, job := range slices.Sorted(maps.Keys(wrongByJob)) {
		w := wrongByJob[job]
		t.Errorf("%s: %d ProwJobs not on the table's %s (%d left on %q, not admitted): %s", job, w.n, final[job], w.unadmitted, defaultCluster, strings.Join(w.examples, "; "))
	}
	if len(list.Items) < len(results) {
		t.Errorf("the API server holds %d ProwJobs in %s, %d were created", len(list.Items), h.ns, len(results))
	}
}

// agreement asks every replica in ds for each job's assignment: final
// holds the jobs they all place on one cluster, disagree describes the others.
func agreement(ctx context.Context, ds []*framework.ServeProcess, jobs []string) (final map[string]string, disagree []string) {
	final = map[string]string{}
	for _, job := range jobs {
		answers := map[string][]string{} // cluster, "unknown" or the error -> replicas
		for _, d := range ds {
			answer := "unknown"
			if a, err := assignmentOf(ctx, d, job); err != nil {
				answer = "error: " + err.Error()
			} else if a != nil {
				answer = a.Cluster
			}
			answers[answer] = append(answers[answer], d.Config.Kube.Replica)
		}
		if len(answers) == 1 {
			for c := range answers {
				if c != "unknown" && !strings.HasPrefix(c, "error: ") {
					final[job] = c
				}
			}
		}
		if _, ok := final[job]; !ok {
			disagree = append(disagree, fmt.Sprintf("%s: %v", job, answers))
		}
	}
	return final, disagree
}

func names(ds []*framework.ServeProcess) string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Config.Kube.Replica)
	}
	return strings.Join(out, ",")
}

// TestHARescheduleReachesEveryReplica reschedules a job through a
// follower, which forwards it to the leader: within 2 s the other two
// replicas answer the new cluster with reason override, and a JobOverride
// object holds it. Then all three are SIGKILLed at once and restarted: each
// serves the override and the cluster (API and admission), and the rest of
// the table is as it was.
func TestHARescheduleReachesEveryReplica(t *testing.T) {
	s := require(t)
	h := newHACluster(t, "ha-reschedule", s.api, 3)
	leader := h.waitOneLeader(haStartTimeout)
	ctx := haContext(t, 3*time.Minute)

	// Replica 2, or the first follower if r2 leads.
	via := h.replica(1)
	if via.Config.Kube.Replica == leader {
		via = h.replica(2)
	}
	var others []*framework.ServeProcess
	for _, d := range h.live() {
		if d != via {
			others = append(others, d)
		}
	}
	t.Logf("leader %s; rescheduling through follower %s", leader, via.Config.Kube.Replica)

	job := jobAPIVerify
	from, err := assignmentOf(ctx, via, job)
	if err != nil || from == nil {
		t.Fatalf("%s: assignment on %s: %v, %v", job, via.Name, from, err)
	}
	to := "build03"
	if from.Cluster == to {
		to = "build02"
	}
	ans, err := post(ctx, via, http.MethodPost, api.ReschedulePath, api.RescheduleRequest{Job: job, Cluster: to, Reason: "e2e ha reschedule"}, 30*time.Second)
	if err != nil || ans.code != http.StatusOK {
		t.Fatalf("reschedule %s -> %s through %s: %d %s %v%s", job, to, via.Name, ans.code, ans.body, err, h.logTails(3000))
	}
	if ans.servedBy != leader {
		t.Errorf("the reschedule through follower %s was served by %q (%s header), want the leader %s", via.Config.Kube.Replica, ans.servedBy, httpapi.ServedByHeader, leader)
	}
	took := waitAssignment(t, others, job, to, "override", haPropagation)
	t.Logf("reschedule %s %s -> %s through %s: acknowledged in %s (served by %s); on %s %s after the acknowledgement",
		job, from.Cluster, to, via.Config.Kube.Replica, ans.took.Round(time.Millisecond), ans.servedBy, names(others), took.Round(time.Millisecond))
	waitAssignment(t, []*framework.ServeProcess{via}, job, to, "override", haPropagation)

	overrides, table := h.jobOverrides(ctx)
	if o := overrides[job]; o == nil || o["cluster"] != to {
		t.Errorf("kubectl get joboverrides -n %s: no JobOverride of %s to %s:\n%s", h.ns, job, to, table)
	} else {
		t.Logf("kubectl get joboverrides -n %s:\n%s", h.ns, table)
	}

	before := map[string]string{}
	for _, j := range haKnownJobs() {
		a, err := assignmentOf(ctx, h.replica(0), j)
		if err != nil || a == nil {
			t.Fatalf("%s: assignment on r1: %v, %v", j, a, err)
		}
		before[j] = a.Cluster
	}

	h.killAll()
	t.Log("SIGKILLed r1, r2 and r3 at once; restarting them together")
	restart := time.Now()
	h.restartAll(ctx)
	newLeader := h.waitOneLeader(haStartTimeout)
	t.Logf("all three ready again and %s leads %s after the restart", newLeader, time.Since(restart).Round(time.Millisecond))

	var adm admissionClient
	for _, d := range h.live() {
		a, err := assignmentOf(ctx, d, job)
		if err != nil || a == nil {
			t.Errorf("%s after the restart: %s: %v, %v", d.Name, job, a, err)
			continue
		}
		if a.Cluster != to || a.Reason != "override" || a.Override == nil || a.Override.Cluster != to {
			t.Errorf("%s after the restart: %s on %s (reason %s, override %+v), want %s by override", d.Name, job, a.Cluster, a.Reason, a.Override, to)
		}
		if got, err := adm.admit(ctx, d, h.ns, framework.ProwJob{Job: job}); err != nil || got != to {
			t.Errorf("%s after the restart: an admission of %s gave %q (%v), want %s", d.Name, job, got, err, to)
		}
		for j, was := range before {
			if a, err := assignmentOf(ctx, d, j); err != nil || a == nil || a.Cluster != was {
				t.Errorf("%s after the restart: %s is %+v (%v), was on %s", d.Name, j, a, err, was)
			}
		}
	}
	if overrides, table := h.jobOverrides(ctx); overrides[job] == nil || overrides[job]["cluster"] != to {
		t.Errorf("after the restart, no JobOverride of %s to %s:\n%s", job, to, table)
	}
}

// TestHAAPIServerDown SIGKILLs the kube-apiserver (a dedicated one, on an
// etcd of its own that keeps running) and keeps it down for 30 s under
// three replicas.
// Meanwhile admissions sent straight to each replica's webhook and
// /api/v1/schedule are answered from memory with the table's cluster,
// /readyz stays 200 and reports the API error in its replication section,
// and a reschedule is refused with a clear 5xx or, when acknowledged, is in
// force once the API server is back. Back, a reschedule reaches every
// replica within 2 s.
func TestHAAPIServerDown(t *testing.T) {
	s := require(t)
	work, err := os.MkdirTemp(s.workDir, "ha-apiserver-")
	if err != nil {
		t.Fatal(err)
	}
	startCtx := haContext(t, 2*time.Minute)
	start := time.Now()
	apiServer, err := framework.StartAPIServerWith(startCtx, framework.APIServerOptions{AssetsDir: s.assets.Dir, WorkDir: work, Restartable: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = apiServer.Stop() })
	t.Logf("a dedicated kube-apiserver and etcd up in %s (logs in %s)", time.Since(start).Round(time.Millisecond), work)

	h := newHACluster(t, "ha-apiserver-down", apiServer, 3)
	leader := h.waitOneLeader(haStartTimeout)
	ctx := haContext(t, 6*time.Minute)
	replicas := h.live()
	follower := replicas[0]
	if follower.Config.Kube.Replica == leader {
		follower = replicas[1]
	}

	table := map[string]string{}
	for _, job := range haKnownJobs() {
		a, err := assignmentOf(ctx, h.replica(0), job)
		if err != nil || a == nil {
			t.Fatalf("%s: assignment: %v, %v", job, a, err)
		}
		table[job] = a.Cluster
	}
	var adm admissionClient
	for _, d := range replicas {
		for job, want := range table {
			if got, err := adm.admit(ctx, d, h.ns, framework.ProwJob{Job: job, Labels: jobLabels[job]}); err != nil || got != want {
				t.Fatalf("before the outage, %s admitted %s to %q (%v), want %s", d.Name, job, got, err, want)
			}
		}
	}

	// An error the replicas reported before counts for nothing.
	baseline := map[string]string{}
	for _, d := range replicas {
		if _, body, err := readyz(ctx, d); err == nil {
			baseline[d.Config.Kube.Replica] = replicationErrors(body)
		}
	}
	stop := time.Now()
	if err := apiServer.KillKubeAPIServer(); err != nil {
		t.Fatal(err)
	}
	down := time.Now()
	t.Logf("kube-apiserver SIGKILLed (took %s); leader was %s", down.Sub(stop).Round(time.Millisecond), leader)

	// A reschedule through a follower during the outage, in the background
	// (it may wait for the API server).
	const outage = 30 * time.Second
	outageJob, outageTo := jobConsoleUnit, "build03"
	if table[outageJob] == outageTo {
		outageTo = "build02"
	}
	type answer struct {
		a   apiAnswer
		err error
	}
	outageAnswer := make(chan answer, 1)
	go func() {
		time.Sleep(10 * time.Second)
		a, err := post(ctx, follower, http.MethodPost, api.ReschedulePath, api.RescheduleRequest{Job: outageJob, Cluster: outageTo, Reason: "e2e during the outage"}, outage+20*time.Second)
		outageAnswer <- answer{a, err}
	}()
	// A job the table lacks, admitted during the outage on one replica.
	newJob := "pull-ci-openshift-outage-main-unit"
	newJobCluster, newJobErr := "", error(nil)

	var (
		admLat, schedLat []time.Duration
		failures         []string
		apiErrorSeen     = map[string]string{}
	)
	for round := 0; time.Since(down) < outage; round++ {
		for _, d := range replicas {
			if d.Exited() {
				failures = append(failures, fmt.Sprintf("%s exited during the outage", d.Name))
				continue
			}
			for job, want := range table {
				t0 := time.Now()
				got, err := adm.admit(ctx, d, h.ns, framework.ProwJob{Job: job, Labels: jobLabels[job]})
				admLat = append(admLat, time.Since(t0))
				if err != nil || got != want {
					failures = append(failures, fmt.Sprintf("%s at +%s: admission of %s gave %q (%v), want %s", d.Name, time.Since(down).Round(time.Second), job, got, err, want))
				}
				t0 = time.Now()
				got, err = schedule(ctx, d, job)
				schedLat = append(schedLat, time.Since(t0))
				if err != nil || got != want {
					failures = append(failures, fmt.Sprintf("%s at +%s: schedule of %s gave %q (%v), want %s", d.Name, time.Since(down).Round(time.Second), job, got, err, want))
				}
			}
			code, body, err := readyz(ctx, d)
			if err != nil || code != http.StatusOK {
				failures = append(failures, fmt.Sprintf("%s at +%s: /readyz %d (%v): %v", d.Name, time.Since(down).Round(time.Second), code, err, body))
			} else if e := replicationErrors(body); e != "" && e != baseline[d.Config.Kube.Replica] {
				apiErrorSeen[d.Config.Kube.Replica] = e
			}
			if round == 3 && d == replicas[0] {
				newJobCluster, newJobErr = adm.admit(ctx, d, h.ns, framework.ProwJob{Job: newJob})
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	// The replication section of each replica at the end of the outage.
	for _, d := range replicas {
		if _, body, err := readyz(ctx, d); err == nil {
			t.Logf("%s /readyz replication at the end of the outage: %s", d.Config.Kube.Replica, jsonString(replication(body)))
			if e := replicationErrors(body); e != "" && e != baseline[d.Config.Kube.Replica] {
				apiErrorSeen[d.Config.Kube.Replica] = e
			}
		}
	}
	sort.Slice(admLat, func(i, j int) bool { return admLat[i] < admLat[j] })
	sort.Slice(schedLat, func(i, j int) bool { return schedLat[i] < schedLat[j] })
	t.Logf("during the outage: %d admissions p50 %s p99 %s; %d schedule calls p50 %s p99 %s",
		len(admLat), percentile(admLat, 50).Round(time.Microsecond), percentile(admLat, 99).Round(time.Microsecond),
		len(schedLat), percentile(schedLat, 50).Round(time.Microsecond), percentile(schedLat, 99).Round(time.Microsecond))
	if len(failures) > 0 {
		t.Errorf("%d failures during the outage, first:\n%s", len(failures), strings.Join(failures[:min(len(failures), 15)], "\n"))
	}
	for _, d := range replicas {
		if apiErrorSeen[d.Config.Kube.Replica] == "" {
			t.Errorf("%s: /readyz's replication section never reported a (new) error while the API server was down (before: %q)", d.Name, baseline[d.Config.Kube.Replica])
		}
	}
	if newJobErr != nil || !usableClusters[newJobCluster] {
		t.Errorf("during the outage, %s (not in the table) was admitted to %q (%v), want a usable cluster", newJob, newJobCluster, newJobErr)
	}

	restartAt := time.Now()
	if err := apiServer.StartKubeAPIServer(); err != nil {
		t.Fatalf("%v%s", err, h.logTails(3000))
	}
	t.Logf("kube-apiserver down for %s; started again in %s", time.Since(down).Round(time.Millisecond), time.Since(restartAt).Round(time.Millisecond))
	back := time.Now()

	var oa answer
	select {
	case oa = <-outageAnswer:
	case <-time.After(30 * time.Second):
		t.Fatalf("the reschedule sent during the outage got no answer 30 s after the API server came back%s", h.logTails(3000))
	}
	acked := oa.err == nil && oa.a.code == http.StatusOK
	switch {
	case oa.err != nil:
		t.Errorf("the reschedule sent during the outage got no answer: %v (after %s)", oa.err, oa.a.took.Round(time.Millisecond))
	case acked:
		t.Logf("the reschedule of %s -> %s sent through %s during the outage was acknowledged after %s: it must be in force", outageJob, outageTo, follower.Config.Kube.Replica, oa.a.took.Round(time.Millisecond))
	case oa.a.code >= 500 && oa.a.body != "":
		t.Logf("the reschedule sent through %s during the outage was refused after %s: %d %s", follower.Config.Kube.Replica, oa.a.took.Round(time.Millisecond), oa.a.code, oa.a.body)
	default:
		t.Errorf("the reschedule sent during the outage was answered %d %q after %s; want 200 or a 5xx saying why", oa.a.code, oa.a.body, oa.a.took.Round(time.Millisecond))
	}

	newLeader := h.waitOneLeader(30 * time.Second)
	t.Logf("after the API server came back, %s leads (%s later)", newLeader, time.Since(back).Round(time.Millisecond))

	// Back, a reschedule reaches every replica within 2 s. When it does not,
	// how long it takes is measured (up to haSlowArrival) and reported.
	job := jobInstallerUnit
	to := "build03"
	if table[job] == to {
		to = "build02"
	}
	ans, err := post(ctx, follower, http.MethodPost, api.ReschedulePath, api.RescheduleRequest{Job: job, Cluster: to, Reason: "e2e after the outage"}, 30*time.Second)
	if err != nil || ans.code != http.StatusOK {
		t.Fatalf("after the outage, reschedule %s -> %s through %s: %d %s %v%s", job, to, follower.Name, ans.code, ans.body, err, h.logTails(3000))
	}
	ackedAt := time.Since(back)
	arrived := arrivals(ctx, h.live(), job, to, "override", time.Now(), haSlowArrival)
	t.Logf("%s after the API server came back, reschedule %s -> %s through %s acknowledged in %s (served by %s); on each replica after %s",
		ackedAt.Round(time.Millisecond), job, to, follower.Config.Kube.Replica, ans.took.Round(time.Millisecond), ans.servedBy, arrived)
	for replica, took := range arrived {
		if took < 0 || took > haPropagation {
			t.Errorf("after the outage, the reschedule of %s -> %s reached %s after %s, want within %s (-1s: not within %s)%s",
				job, to, replica, took, haPropagation, haSlowArrival, h.logTails(1500))
		}
	}
	if acked {
		if arrived := arrivals(ctx, h.live(), outageJob, outageTo, "override", time.Now(), haSlowArrival); slices.Contains(slices.Collect(maps.Values(arrived)), -time.Second) {
			t.Errorf("the reschedule of %s -> %s acknowledged during the outage is not in force on every replica: %s", outageJob, outageTo, arrived)
		}
	}

	// The job placed during the outage ends with one cluster on every
	// replica (its claim is retried with a backoff of up to 30 s).
	if newJobErr == nil {
		arrived := arrivals(ctx, h.live(), newJob, newJobCluster, "", back, haSlowArrival)
		t.Logf("%s, admitted on %s during the outage to %s: served by each replica %s after the API server came back (-1s: not within %s)",
			newJob, replicas[0].Config.Kube.Replica, newJobCluster, arrived, haSlowArrival)
		if slices.Contains(slices.Collect(maps.Values(arrived)), -time.Second) {
			out, _ := s.haKubectl(ctx, apiServer.KubeconfigPath, "get", "jobplacements,tableshards,dispatcherreplicas", "-n", h.ns)
			t.Errorf("%s, admitted on %s during the outage to %s, is not served alike by every replica: %s\nkubectl get jobplacements,tableshards,dispatcherreplicas:\n%s",
				newJob, replicas[0].Config.Kube.Replica, newJobCluster, arrived, out)
		}
	}
}

// haSlowArrival bounds how long a write that missed haPropagation is
// still waited for, to report how late it arrives.
const haSlowArrival = 90 * time.Second

// arrivals polls each replica until it answers cluster for job (and
// reason, when set), all at once, for up to max: how long after since each
// did, -1s for never.
func arrivals(ctx context.Context, ds []*framework.ServeProcess, job, cluster, reason string, since time.Time, max time.Duration) map[string]time.Duration {
	start := time.Now()
	out := map[string]time.Duration{}
	for _, d := range ds {
		out[d.Config.Kube.Replica] = -time.Second
	}
	for time.Since(start) < max {
		pending := 0
		for _, d := range ds {
			if out[d.Config.Kube.Replica] >= 0 {
				continue
			}
			if a, err := assignmentOf(ctx, d, job); err == nil && a != nil && a.Cluster == cluster && (reason == "" || a.Reason == reason) {
				out[d.Config.Kube.Replica] = time.Since(since).Round(time.Millisecond)
				continue
			}
			pending++
		}
		if pending == 0 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return out
}
