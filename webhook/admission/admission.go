package admission

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	prowjobsv1 "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// MutatePath is where the webhook server serves ProwJob admission.
const MutatePath = "/mutate-prowjobs"

// Admitter decides where a ProwJob being created runs: one call per
// admission. *dispatch.Dispatcher implements it.
type Admitter interface {
	Admit(ctx context.Context, req dispatch.AdmissionRequest) (dispatch.Decision, error)
}

var _ Admitter = (*dispatch.Dispatcher)(nil)

// Handler is the ctrladmission.Handler that sets spec.cluster on new ProwJobs
// to the dispatcher's assignment. It never denies: whatever goes wrong, the
// ProwJob is allowed unchanged, and the outcome is counted and logged.
type Handler struct {
	admitter   Admitter
	skipLabels []string // ProwJobs carrying one are left as created
	metrics    *Metrics
	log        logr.Logger
	now        func() time.Time
}

// DefaultSkipLabels are the labels of ProwJobs admission leaves as created:
// pj-rehearse's rehearsals, which carry the cluster their PR's config gave them.
var DefaultSkipLabels = []string{"ci.openshift.org/rehearse"}

// NewHandler returns the admission handler. metrics may be nil (nothing
// is counted). A ProwJob carrying any of skipLabels is left as created
// (outcome skipped), before the dispatcher is asked anything.
func NewHandler(d Admitter, metrics *Metrics, log logr.Logger, skipLabels ...string) (*Handler, error) {
	if metrics == nil {
		var err error
		if metrics, err = NewMetrics(nil); err != nil {
			return nil, err
		}
	}
	return &Handler{admitter: d, skipLabels: skipLabels, metrics: metrics, log: log, now: time.Now}, nil
}

// decision is what Handle decided, for the log line and the metrics.
type decision struct {
	outcome    Outcome
	job        string
	oldCluster string
	newCluster string
	reason     string
	dryRun     bool
}

// Handle implements ctrladmission.Handler. It always allows: a panic below it
// is recovered into an allowed, unpatched answer too (controller-runtime's
// own recovery would answer "denied" with code 500, which the API server
// honours whatever the failurePolicy).
func (a *Handler) Handle(ctx context.Context, req ctrladmission.Request) (resp ctrladmission.Response) {
	start := a.now()
	var d decision
	defer func() {
		if r := recover(); r != nil {
			resp, d = allow(decision{outcome: OutcomeError, job: d.job, reason: fmt.Sprintf("panic: %v", r)})
		}
		a.metrics.observe(d.outcome, d.newCluster, a.now().Sub(start).Seconds())
		a.log.Info("admission", "uid", req.UID, "outcome", d.outcome, "job", d.job,
			"oldCluster", d.oldCluster, "newCluster", d.newCluster, "reason", d.reason, "dryRun", d.dryRun)
	}()
	resp, d = a.decide(ctx, req)
	return resp
}

func (a *Handler) decide(ctx context.Context, req ctrladmission.Request) (ctrladmission.Response, decision) {
	if req.Operation != admissionv1.Create {
		return allow(decision{outcome: OutcomeNotCreate, reason: "operation " + string(req.Operation)})
	}
	if req.Kind.Group != prowjobsv1.SchemeGroupVersion.Group || req.Kind.Version != prowjobsv1.SchemeGroupVersion.Version || req.Kind.Kind != "ProwJob" {
		return allow(decision{outcome: OutcomeWrongKind, reason: "kind " + req.Kind.String()})
	}
	pj, err := decodeProwJob(req)
	if err != nil {
		return allow(decision{outcome: OutcomeUndecodable, reason: "decoding the ProwJob: " + err.Error()})
	}
	d := decision{job: pj.Spec.Job, oldCluster: pj.Spec.Cluster, dryRun: req.DryRun != nil && *req.DryRun}
	if d.job == "" {
		d.outcome, d.reason = OutcomeUndecodable, "the ProwJob has no spec.job"
		return allow(d)
	}
	for _, l := range a.skipLabels {
		if _, ok := pj.Metadata.Labels[l]; ok {
			d.outcome, d.reason = OutcomeSkipped, "label "+l
			return allow(d)
		}
	}
	dec, err := a.admitter.Admit(ctx, dispatch.AdmissionRequest{
		Job: d.job, Agent: string(pj.Spec.Agent), Cluster: d.oldCluster, Labels: pj.Metadata.Labels, DryRun: d.dryRun,
	})
	switch {
	case errors.Is(err, dispatch.ErrNotReady):
		d.outcome, d.reason = OutcomeNotReady, err.Error()
		return allow(d)
	case err != nil:
		d.outcome, d.reason = OutcomeError, err.Error()
		return allow(d)
	case dec.Reason == table.ReasonAgent:
		d.outcome, d.reason = OutcomeNotKubernetes, "agent "+string(pj.Spec.Agent)
		return allow(d)
	case dec.Reason == table.ReasonUnplaceable:
		d.outcome, d.reason = OutcomeUnplaceable, dec.Detail
		return allow(d)
	case dec.Cluster == "":
		d.outcome, d.reason = OutcomeError, "admit: no cluster"
		return allow(d)
	}
	d.newCluster, d.reason = dec.Cluster, string(dec.Reason)
	switch {
	case !dec.Patch && dec.Reason == table.ReasonManual:
		d.outcome = OutcomeManual
	case d.dryRun:
		d.outcome = OutcomeDryRun
	case !dec.Patch:
		d.outcome = OutcomeUnchanged
	default:
		d.outcome = OutcomePatched
	}
	if !dec.Patch {
		return allow(d)
	}
	return patchCluster(d.oldCluster, dec.Cluster), d
}

// allow answers Allowed without a patch, with the decision's reason as the message.
func allow(d decision) (ctrladmission.Response, decision) {
	msg := string(d.outcome)
	if d.reason != "" {
		msg += ": " + d.reason
	}
	return ctrladmission.Allowed(msg), d
}

// patchCluster returns a response setting spec.cluster to cluster with one
// JSON patch operation. It is what ctrladmission.PatchResponseFromRaw computes
// for this edit (TestPatchMatchesPatchResponseFromRaw checks that), without
// re-encoding the object and diffing it, which costs ~10x the whole decision:
// and since the object is never re-encoded from prow's Go types, fields this
// prow version does not know are untouched.
func patchCluster(oldCluster, cluster string) ctrladmission.Response {
	op := "replace"
	if oldCluster == "" {
		op = "add" // RFC 6902: add also replaces a member that exists (an empty "cluster": "")
	}
	resp := ctrladmission.Patched("", jsonpatch.JsonPatchOperation{Operation: op, Path: "/spec/cluster", Value: cluster})
	pt := admissionv1.PatchTypeJSONPatch
	resp.PatchType = &pt
	return resp
}
