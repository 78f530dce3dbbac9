package admission

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	prowjobsv1 "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"
)

func TestDecodeProwJob(t *testing.T) {
	for _, tc := range []struct {
		name    string
		raw     string
		want    *admittedProwJob
		wantErr string
	}{
		{
			name: "the fields admission reads",
			raw:  `{"apiVersion":"prow.k8s.io/v1","kind":"ProwJob","metadata":{"name":"x","labels":{"a":"b"}},"spec":{"job":"j","cluster":"build01","agent":"kubernetes","pod_spec":{"containers":[{"image":"i"}]}},"status":{"state":"triggered"}}`,
			want: func() *admittedProwJob {
				pj := &admittedProwJob{APIVersion: "prow.k8s.io/v1", Kind: "ProwJob"}
				pj.Metadata.Labels = map[string]string{"a": "b"}
				pj.Spec.Job, pj.Spec.Cluster, pj.Spec.Agent = "j", "build01", prowjobsv1.KubernetesAgent
				return pj
			}(),
		},
		{
			name: "no apiVersion and kind: the request's kind says it",
			raw:  `{"spec":{"job":"j"}}`,
			want: func() *admittedProwJob { pj := &admittedProwJob{}; pj.Spec.Job = "j"; return pj }(),
		},
		{
			name: "field names are case-sensitive, as the API server decodes",
			raw:  `{"Spec":{"Job":"j"},"spec":{"Cluster":"x"}}`,
			want: &admittedProwJob{},
		},
		{name: "empty", raw: ``, wantErr: "no content"},
		{name: "garbage", raw: `{"spec": [`, wantErr: "unexpected end"},
		{name: "wrong type", raw: `{"spec":{"job":7}}`, wantErr: "cannot unmarshal number"},
		{name: "another version", raw: `{"apiVersion":"prow.k8s.io/v2","kind":"ProwJob"}`, wantErr: `apiVersion "prow.k8s.io/v2"`},
		{name: "another kind", raw: `{"apiVersion":"prow.k8s.io/v1","kind":"Pod"}`, wantErr: `kind "Pod"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeProwJob(ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Object: runtime.RawExtension{Raw: []byte(tc.raw)}}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("decoded (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzDecodeProwJob checks decodeProwJob against the full decode of
// controller-runtime's ctrladmission.Decoder into prow's ProwJob: whenever that
// decodes a JSON object, decodeProwJob does too, with the same fields. (The
// full decode also reads YAML; the API server sends admission JSON.)
func FuzzDecodeProwJob(f *testing.F) {
	fixture, err := os.ReadFile("testdata/prowjob.json")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{string(fixture), `{"spec":{"job":"j","agent":"jenkins"}}`, `{"metadata":{"labels":{"ci.openshift.org/rehearse":"1"}},"spec":{"job":"j","cluster":"c"}}`, `{"kind":"ProwJob","spec":{"job":"\u00e9"}}`} {
		f.Add([]byte(s))
	}
	scheme := runtime.NewScheme()
	if err := prowjobsv1.AddToScheme(scheme); err != nil {
		f.Fatal(err)
	}
	full := ctrladmission.NewDecoder(scheme)
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		req := ctrladmission.Request{AdmissionRequest: admissionv1.AdmissionRequest{Object: runtime.RawExtension{Raw: raw}}}
		var want prowjobsv1.ProwJob
		if err := full.Decode(req, &want); err != nil {
			return // refused by the full decode: decodeProwJob may refuse or skip what it does not read
		}
		got, err := decodeProwJob(req)
		if err != nil {
			t.Fatalf("the full decode accepts %q, decodeProwJob refuses it: %v", raw, err)
		}
		if len(want.Labels) == 0 && len(got.Metadata.Labels) == 0 {
			want.Labels, got.Metadata.Labels = nil, nil
		}
		if got.Spec.Job != want.Spec.Job || got.Spec.Cluster != want.Spec.Cluster || got.Spec.Agent != want.Spec.Agent || !cmp.Equal(got.Metadata.Labels, want.Labels) {
			t.Fatalf("%q: decoded job %q cluster %q agent %q labels %v; the full decode gives %q %q %q %v",
				raw, got.Spec.Job, got.Spec.Cluster, got.Spec.Agent, got.Metadata.Labels, want.Spec.Job, want.Spec.Cluster, want.Spec.Agent, want.Labels)
		}
	})
}
