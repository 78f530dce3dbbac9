package httpapi

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/engine"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Jobs of the fake backend's table.
const (
	armJob  = "pull-ci-openshift-origin-main-e2e-aws-arm64"
	unitJob = "pull-ci-openshift-origin-main-unit"
)

// fixedStatus is a StatusReporter.
type fixedStatus dispatch.Status

func (s fixedStatus) Status() dispatch.Status { return dispatch.Status(s) }

// fakeBackend is an in-memory Backend: a table and overrides, recording the
// state-changing calls.
type fakeBackend struct {
	mu            sync.Mutex
	rows          map[string]table.Assignment
	overrides     []table.Override
	report        *engine.Report
	dispatchErr   error
	explainErr    error
	rescheduleErr error
	clusters      []dispatch.ClusterStatus
	buildFarm     []byte
	buildFarmErr  error
	status        dispatch.Status

	reschedules []dispatch.RescheduleRequest
	deleted     []string
	dispatches  int

	// inForce are the drains and caps in force; drainPlan answers
	// PreviewDrain and Drain (with the request's override), drainErr fails
	// Drain (a plan with it when drainErr wraps ErrNotSaved), previewErr
	// fails PreviewDrain, undrainErr fails Undrain (with report when it
	// wraps ErrNotSaved).
	inForce    []table.Drain
	drainPlan  dispatch.DrainPlan
	drainErr   error
	previewErr error
	undrainErr error

	previews, drains []dispatch.DrainRequest
	undrains         []string // "cluster by"

	// whatIf answers WhatIf, failing with whatIfErr; whatIfs records the requests.
	whatIf    dispatch.WhatIf
	whatIfErr error
	whatIfs   []dispatch.WhatIfRequest
}

func newFakeBackend() *fakeBackend {
	return &fakeBackend{rows: map[string]table.Assignment{
		armJob:  {Job: armJob, Cluster: "build05", Reason: table.ReasonCapability},
		unitJob: {Job: unitJob, Cluster: "build01", Reason: table.ReasonBalanced},
	}}
}

func (f *fakeBackend) Lookup(job string) (table.Assignment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.rows[job]
	return a, ok
}

// SearchJobs lists the rows containing query, sorted (no prefix-first
// ordering: dispatch's tests cover that).
func (f *fakeBackend) SearchJobs(query string, limit int) ([]string, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []string
	for job := range f.rows {
		if query != "" && strings.Contains(job, query) {
			all = append(all, job)
		}
	}
	slices.Sort(all)
	return all[:min(len(all), limit)], len(all)
}

func (f *fakeBackend) Dispatch(context.Context) (*engine.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dispatches++
	return f.report, f.dispatchErr
}

func (f *fakeBackend) Reschedule(_ context.Context, req dispatch.RescheduleRequest) (*dispatch.RescheduleResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reschedules = append(f.reschedules, req)
	if f.rescheduleErr != nil {
		return nil, f.rescheduleErr
	}
	from, ok := f.rows[req.Job]
	if !ok {
		return nil, fmt.Errorf("reschedule job %q: %w", req.Job, dispatch.ErrNotFound)
	}
	o := table.Override{Job: req.Job, Cluster: req.Cluster, Reason: req.Reason, By: req.By}
	f.overrides = append(f.overrides, o)
	return &dispatch.RescheduleResult{From: from.Cluster, To: req.Cluster, Override: o}, nil
}

func (f *fakeBackend) DeleteOverride(_ context.Context, job string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, o := range f.overrides {
		if o.Job == job {
			f.overrides = append(f.overrides[:i], f.overrides[i+1:]...)
			f.deleted = append(f.deleted, job)
			return nil
		}
	}
	return fmt.Errorf("job %q has no override: %w", job, dispatch.ErrNotFound)
}

func (f *fakeBackend) Overrides() []table.Override {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]table.Override(nil), f.overrides...)
}

func (f *fakeBackend) Explain(job string) (*engine.Explanation, error) {
	if f.explainErr != nil {
		return nil, f.explainErr
	}
	a, ok := f.Lookup(job)
	if !ok {
		return nil, fmt.Errorf("explain job %q: %w", job, dispatch.ErrNotFound)
	}
	return &engine.Explanation{Job: job, Assignment: a, Steps: []engine.Step{{Rule: a.Reason, Matched: true, Detail: "fake"}}}, nil
}

func (f *fakeBackend) Clusters() []dispatch.ClusterStatus { return f.clusters }

func (f *fakeBackend) Status() dispatch.Status { return f.status }

func (f *fakeBackend) BuildFarmConfig() ([]byte, error) { return f.buildFarm, f.buildFarmErr }

func (f *fakeBackend) Drains() []table.Drain {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]table.Drain(nil), f.inForce...)
}

// planFor is drainPlan with req's override. Callers hold mu.
func (f *fakeBackend) planFor(req dispatch.DrainRequest) *dispatch.DrainPlan {
	p := f.drainPlan
	p.Override = table.Drain{Cluster: req.Cluster, Capacity: req.Capacity, Reason: req.Reason, By: req.By, CreatedAt: fakeNow(), Expires: fakeNow().Add(req.TTL)}
	return &p
}

func (f *fakeBackend) PreviewDrain(_ context.Context, req dispatch.DrainRequest) (*dispatch.DrainPlan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.previews = append(f.previews, req)
	if f.previewErr != nil {
		return nil, f.previewErr
	}
	return f.planFor(req), nil
}

func (f *fakeBackend) Drain(_ context.Context, req dispatch.DrainRequest) (*dispatch.DrainPlan, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.drains = append(f.drains, req)
	if errors.Is(f.drainErr, dispatch.ErrStranded) { // refused, with the plan that lists them
		return f.planFor(req), f.drainErr
	}
	if f.drainErr != nil && !errors.Is(f.drainErr, dispatch.ErrNotSaved) {
		return nil, f.drainErr
	}
	p := f.planFor(req)
	f.inForce = append(f.inForce, p.Override)
	return p, f.drainErr
}

func (f *fakeBackend) Undrain(_ context.Context, cluster, by string) (*engine.Report, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.undrains = append(f.undrains, cluster+" "+by)
	if f.undrainErr != nil && !errors.Is(f.undrainErr, dispatch.ErrNotSaved) {
		return nil, f.undrainErr
	}
	for i, o := range f.inForce {
		if o.Cluster == cluster {
			f.inForce = append(f.inForce[:i], f.inForce[i+1:]...)
			rep := f.report
			if rep == nil {
				rep = &engine.Report{}
			}
			return rep, f.undrainErr
		}
	}
	return nil, fmt.Errorf("undrain: cluster %q has no drain or capacity cap: %w", cluster, dispatch.ErrNotFound)
}

func (f *fakeBackend) WhatIf(_ context.Context, req dispatch.WhatIfRequest) (*dispatch.WhatIf, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.whatIfs = append(f.whatIfs, req)
	if f.whatIfErr != nil {
		return nil, f.whatIfErr
	}
	w := f.whatIf
	return &w, nil
}

// fakeNow is when the fake's drains are made.
func fakeNow() time.Time { return time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC) }

var _ Backend = (*fakeBackend)(nil)
