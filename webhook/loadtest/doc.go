// Package loadtest holds the admission webhook's load harness, a test-only
// tool. It runs the parts serve runs, wired as serve wires them: the real
// *dispatch.Dispatcher (dispatch.New, then Run) behind admission.NewHandler
// and the controller-runtime webhook server over TLS on the loopback
// interface. It posts AdmissionReviews to it at a fixed rate, open loop, then
// prints latency percentiles, throughput, errors, dropped requests, memory
// and the setup time.
//
// The inputs are generated on disk in a temporary dir, in the formats serve
// reads (see docs/examples): a Prow job config tree of -jobs jobs, about ten
// per file, presubmits and periodics, some needing capabilities
// (capability/arm64), kvm, no-builds, a cloud or the ssh bastion, a few
// pinned with ci-operator.openshift.io/cluster, on the manual cluster or run
// by jenkins; a cluster config of ten clusters over three providers with
// capacities 30..100; a dispatcher config; and a demand file. The jobs, the
// clusters and the demand are enginetest.Workload's. The dispatcher keeps
// its state in the temporary dir, as in production.
//
// Once the first dispatch has made the table, the harness sends reviews of
// ProwJobs of the table's jobs, labelled as Prow labels them, and a share
// -new-fraction of reviews of jobs the table lacks, which the dispatcher
// delta-assigns and persists. An answer is wrong unless it allows the ProwJob
// and patches spec.cluster to the table's cluster (for a new job: the cluster
// the dispatcher reports for it afterwards). After the run the harness checks
// the webhook's and the dispatcher's metrics, then starts a second dispatcher
// on the same state dir and checks that it kept every delta assignment.
//
// Each run starts with a warm-up, -warmup long, in which the rate ramps up
// linearly from zero, so that the client opens its TLS connections as it
// needs them, as kube-apiserver does once, rather than hundreds at once;
// its latencies and dropped requests are reported apart. Then, unless
// -null=false, the harness sends the same load to a null webhook:
// controller-runtime's webhook server built by admission.NewServer with the
// same TLS and server options, whose handler allows every review and does
// no work. It reports the ratio of the two p99s, ours over the null's: the
// cost of the dispatcher over the floor of TLS, HTTP and the review's JSON.
//
// With -window, the modes alternate in windows that long (ours, the null
// webhook, ours, ...) until each had -duration, so that the machine's load
// drifting hits both alike; the ratio is reported per round, with the
// median. With -drain-every, a third mode measures ours while a drain loop
// drains a cluster through Dispatcher.Drain, then undrains it, one operation
// that often, alternating the clusters whose drain strands no job; it
// reports the drains applied, the engine runs they cost
// (prowjob_dispatcher_engine_runs_total) and, apart from jobs of the table,
// the latency of new jobs' admissions, which the drains' commits can delay.
// Answers are checked against the table just before and just after each
// request; one that matches neither while a drain operation ran is counted
// as raced, not wrong. `make load-drains` runs both.
//
// The default run, 5,000 jobs at 200 reviews/s for one second, is a short
// smoke test that `go test ./...` runs, under -race too. The long run is
// `make load`, or:
//
//	go test ./webhook/loadtest -run 'TestLoad$' -v -args -rate 1000 -duration 60s -jobs 50000
//
// Any error, wrong answer or request dropped after the warm-up fails the
// test, for the null webhook too; latency is reported, never asserted.
package loadtest
