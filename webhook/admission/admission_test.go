package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"gomodules.xyz/jsonpatch/v2"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

const (
	armJob  = "pull-ci-openshift-origin-main-e2e-aws-arm64"
	unitJob = "pull-ci-openshift-origin-main-unit"
	newJob  = "pull-ci-openshift-origin-main-brand-new"
)

// prowJob returns testdata/prowjob.json as a generic object.
func prowJob(t testing.TB) map[string]any {
	t.Helper()
	data, err := os.ReadFile("testdata/prowjob.json")
	if err != nil {
		t.Fatal(err)
	}
	var obj map[string]any
	if err := json.Unmarshal(data, &obj); err != nil {
		t.Fatal(err)
	}
	return obj
}

// withSpec returns a function setting spec fields (nil deletes).
func withSpec(kv map[string]any) func(map[string]any) {
	return func(obj map[string]any) {
		spec := obj["spec"].(map[string]any)
		for k, v := range kv {
			if v == nil {
				delete(spec, k)
			} else {
				spec[k] = v
			}
		}
	}
}

// withLabel returns a function setting a label of the object.
func withLabel(k, v string) func(map[string]any) {
	return func(obj map[string]any) {
		meta := obj["metadata"].(map[string]any)
		labels, _ := meta["labels"].(map[string]any)
		if labels == nil {
			labels = map[string]any{}
			meta["labels"] = labels
		}
		labels[k] = v
	}
}

// request builds a ProwJob CREATE request from the fixture, edited by edits.
func request(t testing.TB, edits ...func(map[string]any)) ctrladmission.Request {
	t.Helper()
	obj := prowJob(t)
	for _, e := range edits {
		e(obj)
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	return ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{
		UID:       "4b7d3a7e-0b59-4cde-9a5e-3f0c0f6a9d11",
		Kind:      metav1.GroupVersionKind{Group: "prow.k8s.io", Version: "v1", Kind: "ProwJob"},
		Resource:  metav1.GroupVersionResource{Group: "prow.k8s.io", Version: "v1", Resource: "prowjobs"},
		Namespace: "ci",
		Operation: admissionv1.Create,
		Object:    runtime.RawExtension{Raw: raw},
	}}
}

func newTestAdmission(t testing.TB, d Admitter) (*Handler, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewHandler(d, m, logr.Discard(), DefaultSkipLabels...)
	if err != nil {
		t.Fatal(err)
	}
	return a, reg
}

// armLabels are the labels of testdata/prowjob.json.
var armLabels = map[string]string{"capability/arm64": "arm64", "prow.k8s.io/job": armJob, "prow.k8s.io/type": "presubmit"}

// answer returns a fakeAdmitter decide func that always answers dec, err.
func answer(dec dispatch.Decision, err error) func(dispatch.AdmissionRequest) (dispatch.Decision, error) {
	return func(dispatch.AdmissionRequest) (dispatch.Decision, error) { return dec, err }
}

func TestAdmissionHandle(t *testing.T) {
	setCluster := func(c string) func(map[string]any) { return withSpec(map[string]any{"cluster": c}) }
	armReq := dispatch.AdmissionRequest{Job: armJob, Agent: "kubernetes", Cluster: "default", Labels: armLabels}
	with := func(r dispatch.AdmissionRequest, f func(*dispatch.AdmissionRequest)) dispatch.AdmissionRequest {
		f(&r)
		return r
	}
	onArm := dispatch.Decision{Cluster: "build05", Reason: table.ReasonCapability, Patch: true}
	tests := []struct {
		name    string
		req     func(t testing.TB) ctrladmission.Request
		decide  func(dispatch.AdmissionRequest) (dispatch.Decision, error)
		outcome Outcome
		cluster string // the outcome's cluster label
		patch   []jsonpatch.JsonPatchOperation
		admits  []dispatch.AdmissionRequest
		message string // a substring of the response message
	}{
		{
			name:    "a decision to patch is a replace",
			req:     func(t testing.TB) ctrladmission.Request { return request(t) },
			decide:  answer(onArm, nil),
			outcome: OutcomePatched,
			cluster: "build05",
			patch:   []jsonpatch.JsonPatchOperation{{Operation: "replace", Path: "/spec/cluster", Value: "build05"}},
			admits:  []dispatch.AdmissionRequest{armReq},
		},
		{
			name:    "without spec.cluster the patch is an add",
			req:     func(t testing.TB) ctrladmission.Request { return request(t, withSpec(map[string]any{"cluster": nil})) },
			decide:  answer(onArm, nil),
			outcome: OutcomePatched,
			cluster: "build05",
			patch:   []jsonpatch.JsonPatchOperation{{Operation: "add", Path: "/spec/cluster", Value: "build05"}},
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Cluster = "" })},
		},
		{
			name:    "already on the assigned cluster",
			req:     func(t testing.TB) ctrladmission.Request { return request(t, setCluster("build05")) },
			decide:  answer(dispatch.Decision{Cluster: "build05", Reason: table.ReasonCapability}, nil),
			outcome: OutcomeUnchanged,
			cluster: "build05",
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Cluster = "build05" })},
		},
		{
			name:    "manual cluster is kept",
			req:     func(t testing.TB) ctrladmission.Request { return request(t, setCluster("vsphere02")) },
			decide:  answer(dispatch.Decision{Cluster: "vsphere02", Reason: table.ReasonManual}, nil),
			outcome: OutcomeManual,
			cluster: "vsphere02",
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Cluster = "vsphere02" })},
		},
		{
			name: "a job no usable cluster can run is left as created",
			req:  func(t testing.TB) ctrladmission.Request { return request(t) },
			decide: answer(dispatch.Decision{Reason: table.ReasonUnplaceable,
				Detail: `job "x": no usable cluster meets capabilities [arm64]: unplaceable`}, nil),
			outcome: OutcomeUnplaceable,
			message: "no usable cluster meets capabilities [arm64]",
			admits:  []dispatch.AdmissionRequest{armReq},
		},
		{
			name: "non-kubernetes agent is left alone",
			req: func(t testing.TB) ctrladmission.Request {
				return request(t, withSpec(map[string]any{"agent": "jenkins"}))
			},
			decide:  answer(dispatch.Decision{Reason: table.ReasonAgent}, nil),
			outcome: OutcomeNotKubernetes,
			message: "agent jenkins",
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Agent = "jenkins" })},
		},
		{
			name: "dry run: answered with the patch, asked as a dry run",
			req: func(t testing.TB) ctrladmission.Request {
				r := request(t, withSpec(map[string]any{"job": newJob}))
				r.DryRun = ptr.To(true)
				return r
			},
			decide:  answer(dispatch.Decision{Cluster: "build03", Reason: table.ReasonCapability, Patch: true}, nil),
			outcome: OutcomeDryRun,
			cluster: "build03",
			patch:   []jsonpatch.JsonPatchOperation{{Operation: "replace", Path: "/spec/cluster", Value: "build03"}},
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Job, r.DryRun = newJob, true })},
		},
		{
			name:    "not ready: allowed unchanged",
			req:     func(t testing.TB) ctrladmission.Request { return request(t, withSpec(map[string]any{"job": newJob})) },
			decide:  answer(dispatch.Decision{}, fmt.Errorf("admit job: no assignment table yet: %w", dispatch.ErrNotReady)),
			outcome: OutcomeNotReady,
			message: "no assignment table yet",
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Job = newJob })},
		},
		{
			name:    "an error: allowed unchanged",
			req:     func(t testing.TB) ctrladmission.Request { return request(t, withSpec(map[string]any{"job": newJob})) },
			decide:  answer(dispatch.Decision{}, errors.New("no cluster has capability gpu")),
			outcome: OutcomeError,
			message: "capability gpu",
			admits:  []dispatch.AdmissionRequest{with(armReq, func(r *dispatch.AdmissionRequest) { r.Job = newJob })},
		},
		{
			name:    "a decision without a cluster is an error",
			req:     func(t testing.TB) ctrladmission.Request { return request(t) },
			decide:  answer(dispatch.Decision{Reason: table.ReasonBalanced, Patch: true}, nil),
			outcome: OutcomeError,
			message: "no cluster",
			admits:  []dispatch.AdmissionRequest{armReq},
		},
		{
			name: "a rehearsal keeps its cluster, the dispatcher is not asked",
			req: func(t testing.TB) ctrladmission.Request {
				return request(t, withLabel("ci.openshift.org/rehearse", "1234"))
			},
			outcome: OutcomeSkipped,
			message: "label ci.openshift.org/rehearse",
		},
		{
			name: "update is left alone",
			req: func(t testing.TB) ctrladmission.Request {
				r := request(t)
				r.Operation = admissionv1.Update
				return r
			},
			outcome: OutcomeNotCreate,
		},
		{
			name: "wrong kind",
			req: func(t testing.TB) ctrladmission.Request {
				r := request(t)
				r.Kind = metav1.GroupVersionKind{Version: "v1", Kind: "Pod"}
				return r
			},
			outcome: OutcomeWrongKind,
		},
		{
			name: "wrong version",
			req: func(t testing.TB) ctrladmission.Request {
				r := request(t)
				r.Kind.Version = "v1beta1"
				return r
			},
			outcome: OutcomeWrongKind,
		},
		{
			name: "empty object",
			req: func(t testing.TB) ctrladmission.Request {
				r := request(t)
				r.Object.Raw = nil
				return r
			},
			outcome: OutcomeUndecodable,
		},
		{
			name: "garbage object",
			req: func(t testing.TB) ctrladmission.Request {
				r := request(t)
				r.Object.Raw = []byte(`{"spec": [`)
				return r
			},
			outcome: OutcomeUndecodable,
		},
		{
			name:    "object without spec.job",
			req:     func(t testing.TB) ctrladmission.Request { return request(t, withSpec(map[string]any{"job": nil})) },
			outcome: OutcomeUndecodable,
			message: "spec.job",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeAdmitter{decide: tc.decide}
			if f.decide == nil {
				f.decide = func(r dispatch.AdmissionRequest) (dispatch.Decision, error) {
					t.Errorf("Admit called: %+v", r)
					return dispatch.Decision{}, nil
				}
			}
			a, reg := newTestAdmission(t, f)
			resp := a.Handle(context.Background(), tc.req(t))
			if !resp.Allowed {
				t.Fatalf("response not allowed: %+v", resp.Result)
			}
			if diff := cmp.Diff(tc.patch, resp.Patches); diff != "" {
				t.Errorf("patches (-want +got):\n%s", diff)
			}
			if (resp.PatchType != nil) != (len(tc.patch) > 0) {
				t.Errorf("patch type %v with %d patches", resp.PatchType, len(tc.patch))
			}
			if tc.message != "" && (resp.Result == nil || !strings.Contains(resp.Result.Message, tc.message)) {
				t.Errorf("message %+v does not contain %q", resp.Result, tc.message)
			}
			// Labels are gathered sorted by name: cluster, outcome.
			want := map[string]float64{tc.cluster + "," + string(tc.outcome): 1}
			if diff := cmp.Diff(want, series(t, reg, "prowjob_dispatcher_admissions_total")); diff != "" {
				t.Errorf("admissions_total (-want +got):\n%s", diff)
			}
			if got := series(t, reg, "prowjob_dispatcher_admission_duration_seconds"); got[""] != 1 {
				t.Errorf("admission_duration_seconds count = %v, want 1", got)
			}
			if diff := cmp.Diff(tc.admits, f.calls); diff != "" {
				t.Errorf("Admit calls (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPatchMatchesPatchResponseFromRaw checks that the one-operation patch
// is what ctrladmission.PatchResponseFromRaw computes from the object before and
// after setting spec.cluster (edited as generic JSON), with or without a
// cluster before, and that applying it to the fixture, whose spec has fields
// prow's types lack, changes spec.cluster alone.
func TestPatchMatchesPatchResponseFromRaw(t *testing.T) {
	for _, old := range []any{"default", nil} {
		t.Run(fmt.Sprint(old), func(t *testing.T) {
			obj := prowJob(t)
			withSpec(map[string]any{"cluster": old})(obj)
			before, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			withSpec(map[string]any{"cluster": "build09"})(obj)
			after, err := json.Marshal(obj)
			if err != nil {
				t.Fatal(err)
			}
			oldCluster, _ := old.(string)
			got := patchCluster(oldCluster, "build09")
			want := ctrladmission.PatchResponseFromRaw(before, after)
			if diff := cmp.Diff(want.Patches, got.Patches); diff != "" {
				t.Errorf("patches (-PatchResponseFromRaw +patchCluster):\n%s", diff)
			}
			if !got.Allowed {
				t.Error("not allowed")
			}
		})
	}
}

// TestAdmissionOverHTTP sends whole AdmissionReviews through controller-runtime's
// ctrladmission.Webhook: a real one from docs/examples, and malformed bodies,
// which controller-runtime answers with an error review and no panic.
func TestAdmissionOverHTTP(t *testing.T) {
	a, _ := newTestAdmission(t, &fakeAdmitter{decide: answer(dispatch.Decision{Cluster: "build05", Reason: table.ReasonCapability, Patch: true}, nil)})
	srv := httptest.NewServer(&ctrladmission.Webhook{Handler: a})
	t.Cleanup(srv.Close)

	example, err := os.ReadFile("../../docs/examples/admissionreview.json")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		body      []byte
		allowed   bool
		code      int32 // the review's result code, when not allowed
		wantPatch string
	}{
		{name: "docs example", body: example, allowed: true, wantPatch: `[{"op":"replace","path":"/spec/cluster","value":"build05"}]`},
		{name: "garbage", body: []byte(`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {`), code: http.StatusBadRequest},
		{name: "not JSON", body: []byte("\x00\x01 hello"), code: http.StatusBadRequest},
		{name: "no request", body: []byte(`{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}`), allowed: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(tc.body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var review admissionv1.AdmissionReview
			if err := json.NewDecoder(resp.Body).Decode(&review); err != nil {
				t.Fatalf("decoding the review (HTTP %d): %v", resp.StatusCode, err)
			}
			if review.Response == nil {
				t.Fatal("no response in the review")
			}
			if review.Response.Allowed != tc.allowed {
				t.Errorf("allowed = %v, want %v (%+v)", review.Response.Allowed, tc.allowed, review.Response.Result)
			}
			if !tc.allowed && (review.Response.Result == nil || review.Response.Result.Code != tc.code) {
				t.Errorf("result = %+v, want code %d", review.Response.Result, tc.code)
			}
			if got := string(review.Response.Patch); got != tc.wantPatch {
				t.Errorf("patch = %s, want %s", got, tc.wantPatch)
			}
		})
	}
}

func TestAdmissionRecoversPanic(t *testing.T) {
	a, reg := newTestAdmission(t, &fakeAdmitter{decide: func(dispatch.AdmissionRequest) (dispatch.Decision, error) { panic("boom") }})
	resp := a.Handle(context.Background(), request(t))
	if !resp.Allowed || len(resp.Patches) != 0 || resp.Result == nil || !strings.Contains(resp.Result.Message, "panic: boom") {
		t.Errorf("response %+v", resp)
	}
	if got := series(t, reg, "prowjob_dispatcher_admissions_total"); got[","+string(OutcomeError)] != 1 {
		t.Errorf("admissions_total %v, want one error", got)
	}
}
