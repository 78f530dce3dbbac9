package admission

import (
	"errors"
	"fmt"

	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"
	kjson "sigs.k8s.io/json"
	prowjobsv1 "sigs.k8s.io/prow/pkg/apis/prowjobs/v1"
)

// admittedProwJob holds the fields of a ProwJob that admission reads. The
// rest of the object (its pod spec, refs, decoration) is skipped, not
// decoded: decoding the whole ProwJob was most of an admission's CPU.
type admittedProwJob struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Spec struct {
		Job     string                  `json:"job"`
		Cluster string                  `json:"cluster"`
		Agent   prowjobsv1.ProwJobAgent `json:"agent"`
	} `json:"spec"`
}

// decodeProwJob decodes the request's object as the API server does
// (case-sensitive field names, as sigs.k8s.io/json decodes), refusing an
// empty object and one whose apiVersion or kind, when set, is not a
// prow.k8s.io/v1 ProwJob.
func decodeProwJob(req ctrladmission.Request) (*admittedProwJob, error) {
	if len(req.Object.Raw) == 0 {
		return nil, errors.New("there is no content to decode")
	}
	var pj admittedProwJob
	if err := kjson.UnmarshalCaseSensitivePreserveInts(req.Object.Raw, &pj); err != nil {
		return nil, err
	}
	if want := prowjobsv1.SchemeGroupVersion.String(); pj.APIVersion != "" && pj.APIVersion != want {
		return nil, fmt.Errorf("apiVersion %q, want %q", pj.APIVersion, want)
	}
	if pj.Kind != "" && pj.Kind != "ProwJob" {
		return nil, fmt.Errorf("kind %q, want ProwJob", pj.Kind)
	}
	return &pj, nil
}
