package kubestate

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/demand"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/state"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// The conversions between the dispatcher's types and the API objects, in
// both directions. metav1.Time is serialized to the second (RFC 3339), so
// apiTime truncates and goTime gives UTC: a time read back equals the time
// written truncated to the second, whichever replica reads it.

// apiTime is t as the API keeps it; nil for the zero time.
func apiTime(t time.Time) *metav1.Time {
	if t.IsZero() {
		return nil
	}
	mt := metav1.NewTime(t.Truncate(time.Second).UTC())
	return &mt
}

// goTime is an API time as the dispatcher keeps it: UTC; zero for nil.
func goTime(t *metav1.Time) time.Time {
	if t == nil || t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

// jobOverrideSpec is o as a JobOverride's spec.
func jobOverrideSpec(o table.Override) v1alpha1.JobOverrideSpec {
	return v1alpha1.JobOverrideSpec{
		Job: o.Job, Cluster: o.Cluster, Reason: o.Reason, By: o.By,
		CreatedAt: apiTime(o.CreatedAt), Expires: apiTime(o.Expires),
	}
}

// overrideOf is a JobOverride as the dispatcher's override; CreatedAt is the
// object's creation time when its spec has none.
func overrideOf(jo *v1alpha1.JobOverride) table.Override {
	created := goTime(jo.Spec.CreatedAt)
	if created.IsZero() {
		created = goTime(&jo.CreationTimestamp)
	}
	return table.Override{
		Job: jo.Spec.Job, Cluster: jo.Spec.Cluster, Reason: jo.Spec.Reason, By: jo.Spec.By,
		CreatedAt: created, Expires: goTime(jo.Spec.Expires),
	}
}

// clusterDrainSpec is o as a ClusterDrain's spec. Drains always expire, and
// the API holds capacities of 0..100 only.
func clusterDrainSpec(o table.Drain) (v1alpha1.ClusterDrainSpec, error) {
	switch {
	case o.Cluster == "":
		return v1alpha1.ClusterDrainSpec{}, fmt.Errorf("cluster override: no cluster")
	case o.Expires.IsZero():
		return v1alpha1.ClusterDrainSpec{}, fmt.Errorf("cluster override %s: no expiry", o.Cluster)
	case o.Capacity < 0 || o.Capacity > 100:
		return v1alpha1.ClusterDrainSpec{}, fmt.Errorf("cluster override %s: capacity %d not in 0..100", o.Cluster, o.Capacity)
	}
	return v1alpha1.ClusterDrainSpec{
		Cluster: o.Cluster, Capacity: int32(o.Capacity), Reason: o.Reason, By: o.By,
		CreatedAt: apiTime(o.CreatedAt), Expires: *apiTime(o.Expires),
	}, nil
}

// drainOf is a ClusterDrain as the dispatcher's cluster override.
func drainOf(cd *v1alpha1.ClusterDrain) table.Drain {
	created := goTime(cd.Spec.CreatedAt)
	if created.IsZero() {
		created = goTime(&cd.CreationTimestamp)
	}
	return table.Drain{
		Cluster: cd.Spec.Cluster, Capacity: int(cd.Spec.Capacity), Reason: cd.Spec.Reason, By: cd.Spec.By,
		CreatedAt: created, Expires: goTime(&cd.Spec.Expires),
	}
}

// placementSpec is a claimed row as a JobPlacement's spec; provisional, when
// the job config lacks the job, is recorded as admitted once at now.
func placementSpec(row table.Assignment, provisional *jobs.Job, replica string, now time.Time) (v1alpha1.JobPlacementSpec, error) {
	raw, err := json.Marshal(row)
	if err != nil {
		return v1alpha1.JobPlacementSpec{}, fmt.Errorf("job %q: encoding its row: %w", row.Job, err)
	}
	spec := v1alpha1.JobPlacementSpec{Job: row.Job, Cluster: row.Cluster, Reason: string(row.Reason), Replica: replica, Row: raw}
	if provisional != nil {
		p := state.Provisional{Job: *provisional, LastAdmitted: now, Admissions: 1}
		if spec.Provisional, err = json.Marshal(p); err != nil {
			return v1alpha1.JobPlacementSpec{}, fmt.Errorf("job %q: encoding its provisional record: %w", row.Job, err)
		}
	}
	return spec, nil
}

// placementRow is a JobPlacement's row and, when it has one, its provisional
// record. A row that does not decode is rebuilt from the spec's job, cluster
// and reason, which the API validated.
func placementRow(jp *v1alpha1.JobPlacement) (table.Assignment, *state.Provisional, error) {
	var row table.Assignment
	if err := json.Unmarshal(jp.Spec.Row, &row); err != nil || row.Job != jp.Spec.Job || row.Cluster != jp.Spec.Cluster {
		row = table.Assignment{Job: jp.Spec.Job, Cluster: jp.Spec.Cluster, Reason: table.Reason(jp.Spec.Reason),
			AssignedAt: goTime(&jp.CreationTimestamp)}
	}
	if len(jp.Spec.Provisional) == 0 {
		return row, nil, nil
	}
	var p state.Provisional
	if err := json.Unmarshal(jp.Spec.Provisional, &p); err != nil {
		return row, nil, fmt.Errorf("JobPlacement %s: provisional record: %w", jp.Name, err)
	}
	if p.Job.Name != row.Job {
		return row, nil, fmt.Errorf("JobPlacement %s: provisional record of job %q, not %q", jp.Name, p.Job.Name, row.Job)
	}
	return row, &p, nil
}

// maxAdmissionsJSON bounds a DispatcherReplica's admission counts uncompressed.
const maxAdmissionsJSON = 64 << 20

// encodeAdmissions is admission counts as a DispatcherReplica keeps them:
// gzipped JSON; nil for none.
func encodeAdmissions(ac *demand.AdmissionCounts) ([]byte, error) {
	if ac == nil {
		return nil, nil
	}
	raw, err := json.Marshal(ac)
	if err != nil {
		return nil, fmt.Errorf("encoding admission counts: %w", err)
	}
	return gzipBytes(raw)
}

// decodeAdmissions reverses encodeAdmissions.
func decodeAdmissions(data []byte) (*demand.AdmissionCounts, error) {
	if len(data) == 0 {
		return nil, nil
	}
	raw, err := gunzipBytes(data, maxAdmissionsJSON)
	if err != nil {
		return nil, fmt.Errorf("admission counts: %w", err)
	}
	var ac demand.AdmissionCounts
	if err := json.Unmarshal(raw, &ac); err != nil {
		return nil, fmt.Errorf("admission counts: %w", err)
	}
	return &ac, nil
}

// gzipBytes compresses raw at gzip.BestSpeed. The output depends on raw only.
func gzipBytes(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(raw)/6 + 64)
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// gunzipBytes decompresses data, refusing more than limit bytes of output.
func gunzipBytes(data []byte, limit int64) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	raw, err := io.ReadAll(io.LimitReader(zr, limit+1))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("gunzip: more than %d bytes uncompressed", limit)
	}
	return raw, nil
}
