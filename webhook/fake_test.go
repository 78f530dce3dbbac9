package webhook

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// assignCall is one call of fakeDispatcher.Assign.
type assignCall struct {
	job    string
	labels map[string]string
	dryRun bool
}

// fakeDispatcher is an in-memory Dispatcher: a table, manual clusters and
// overrides, recording what it was asked.
type fakeDispatcher struct {
	mu            sync.Mutex
	rows          map[string]table.Assignment
	manual        map[string]bool
	status        Status
	assignTo      string // the cluster Assign gives a job the table lacks
	assignErr     error
	overrides     []table.Override
	report        *engine.Report
	dispatchErr   error
	explainErr    error
	rescheduleErr error
	clusters      []engine.ClusterLoad
	buildFarm     []byte
	buildFarmErr  error

	assigns     []assignCall
	recorded    []string
	reschedules []RescheduleRequest
	deleted     []string
	dispatches  int
}

func newFake() *fakeDispatcher {
	return &fakeDispatcher{
		rows: map[string]table.Assignment{
			"pull-ci-openshift-origin-main-e2e-aws-arm64": {Job: "pull-ci-openshift-origin-main-e2e-aws-arm64", Cluster: "build05", Reason: table.ReasonCapability},
			"pull-ci-openshift-origin-main-unit":          {Job: "pull-ci-openshift-origin-main-unit", Cluster: "build01", Reason: table.ReasonBalanced},
		},
		manual:   map[string]bool{"vsphere02": true},
		status:   Status{Ready: true, TableSize: 2},
		assignTo: "build03",
	}
}

func (f *fakeDispatcher) Status() Status {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.status
}

func (f *fakeDispatcher) Lookup(job string) (table.Assignment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.rows[job]
	return a, ok
}

func (f *fakeDispatcher) Assign(_ context.Context, job string, labels map[string]string, dryRun bool) (table.Assignment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.assigns = append(f.assigns, assignCall{job: job, labels: maps.Clone(labels), dryRun: dryRun})
	if a, ok := f.rows[job]; ok {
		return a, nil
	}
	if f.assignErr != nil {
		return table.Assignment{}, f.assignErr
	}
	a := table.Assignment{Job: job, Cluster: f.assignTo, Reason: table.ReasonBalanced}
	if !dryRun {
		f.rows[job] = a
	}
	return a, nil
}

func (f *fakeDispatcher) IsManual(cluster string) bool { return f.manual[cluster] }

func (f *fakeDispatcher) RecordAdmission(job string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.recorded = append(f.recorded, job)
}

func (f *fakeDispatcher) Dispatch(context.Context) (*engine.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dispatches++
	return f.report, f.dispatchErr
}

func (f *fakeDispatcher) Reschedule(_ context.Context, req RescheduleRequest) (*RescheduleResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reschedules = append(f.reschedules, req)
	if f.rescheduleErr != nil {
		return nil, f.rescheduleErr
	}
	from, ok := f.rows[req.Job]
	if !ok {
		return nil, fmt.Errorf("reschedule job %q: %w", req.Job, ErrNotFound)
	}
	o := table.Override{Job: req.Job, Cluster: req.Cluster, Reason: req.Reason, By: req.By}
	f.overrides = append(f.overrides, o)
	return &RescheduleResult{From: from.Cluster, To: req.Cluster, Override: o}, nil
}

func (f *fakeDispatcher) DeleteOverride(_ context.Context, job string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, o := range f.overrides {
		if o.Job == job {
			f.overrides = append(f.overrides[:i], f.overrides[i+1:]...)
			f.deleted = append(f.deleted, job)
			return nil
		}
	}
	return fmt.Errorf("job %q has no override: %w", job, ErrNotFound)
}

func (f *fakeDispatcher) Overrides() []table.Override {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]table.Override(nil), f.overrides...)
}

func (f *fakeDispatcher) Explain(job string) (*engine.Explanation, error) {
	if f.explainErr != nil {
		return nil, f.explainErr
	}
	a, ok := f.Lookup(job)
	if !ok {
		return nil, fmt.Errorf("explain job %q: %w", job, ErrNotFound)
	}
	return &engine.Explanation{Job: job, Assignment: a, Steps: []engine.Step{{Rule: a.Reason, Matched: true, Detail: "fake"}}}, nil
}

func (f *fakeDispatcher) Clusters() []engine.ClusterLoad { return f.clusters }

func (f *fakeDispatcher) BuildFarmConfig() ([]byte, error) { return f.buildFarm, f.buildFarmErr }

var _ Dispatcher = (*fakeDispatcher)(nil)
