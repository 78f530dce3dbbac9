package dispatch

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/store"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

func TestReschedule(t *testing.T) {
	const arm = "pull-ci-org-repo-main-e2e-arm64" // needs arm64: only build01 has it
	for _, tc := range []struct {
		name    string
		req     RescheduleRequest
		wantErr error
		wantTo  string
	}{
		{"unknown job", RescheduleRequest{Job: "nope", Reason: "r"}, ErrNotFound, ""},
		{"no reason", RescheduleRequest{Job: arm, Cluster: "build01"}, ErrInvalid, ""},
		{"negative ttl", RescheduleRequest{Job: arm, Cluster: "build01", Reason: "r", TTL: -time.Second}, ErrInvalid, ""},
		{"unknown cluster", RescheduleRequest{Job: arm, Cluster: "build99", Reason: "r"}, ErrInvalid, ""},
		{"blocked cluster", RescheduleRequest{Job: "pull-ci-org-repo-main-unit", Cluster: "build04", Reason: "r"}, ErrInvalid, ""},
		{"missing capability", RescheduleRequest{Job: arm, Cluster: "build02", Reason: "r"}, ErrInvalid, ""},
		{"no other eligible cluster", RescheduleRequest{Job: arm, Reason: "r"}, ErrInvalid, ""},
		{"named cluster", RescheduleRequest{Job: "pull-ci-org-repo-main-unit", Cluster: "build02", Reason: "r", By: "bob"}, nil, "build02"},
		{"manual cluster", RescheduleRequest{Job: "pull-ci-org-repo-main-unit", Cluster: "vsphere02", Reason: "r"}, nil, "vsphere02"},
		{"no other kvm cluster", RescheduleRequest{Job: "periodic-kubevirt-e2e", Reason: "r"}, ErrInvalid, ""}, // kvm: build02 only
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			before := d.cache.Snapshot()
			res, err := d.Reschedule(context.Background(), tc.req)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				if len(d.Overrides()) != 0 {
					t.Error("a refused reschedule left an override")
				}
				if got := d.cache.Snapshot(); len(got.Assignments) != len(before.Assignments) || got.ByJob()[tc.req.Job] != before.ByJob()[tc.req.Job] {
					t.Error("a refused reschedule changed the table")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if res.To != tc.wantTo || res.From != before.ByJob()[tc.req.Job].Cluster || res.Override.Cluster != tc.wantTo {
				t.Errorf("result %+v", res)
			}
			a := mustLookup(t, d, tc.req.Job)
			if a.Cluster != tc.wantTo || a.Reason != table.ReasonOverride {
				t.Errorf("row after reschedule %+v", a)
			}
			st, err := store.ReadDir(e.stateDir)
			if err != nil || len(st.Overrides) != 1 || st.Table.ByJob()[tc.req.Job].Cluster != tc.wantTo {
				t.Errorf("override not saved before Reschedule returned: %v %+v", err, st)
			}
		})
	}
}

func TestRescheduleToBestOther(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	from := mustLookup(t, d, "periodic-nightly-1").Cluster
	res, err := d.Reschedule(context.Background(), RescheduleRequest{Job: "periodic-nightly-1", Reason: "flaky"})
	if err != nil {
		t.Fatal(err)
	}
	if res.From != from || res.To == from || res.To == "build04" || res.To == "vsphere02" {
		t.Errorf("moved %s -> %s, want another usable cluster", res.From, res.To)
	}
}

func TestDeleteOverride(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	ctx := context.Background()
	const job = "pull-ci-org-repo-main-e2e-gcp" // pinned to build02
	if err := d.DeleteOverride(ctx, job); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete a missing override: %v, want ErrNotFound", err)
	}
	if _, err := d.Reschedule(ctx, RescheduleRequest{Job: job, Cluster: "build01", Reason: "build02 down"}); err != nil {
		t.Fatal(err)
	}
	if err := d.DeleteOverride(ctx, job); err != nil {
		t.Fatal(err)
	}
	if a := mustLookup(t, d, job); a.Cluster != "build02" || a.Reason != table.ReasonPinned {
		t.Errorf("after deleting the override: %+v, want pinned to build02 again", a)
	}
	if len(d.Overrides()) != 0 {
		t.Error("override still listed")
	}
	st, err := store.ReadDir(e.stateDir)
	if err != nil || len(st.Overrides) != 0 || st.Table.ByJob()[job].Cluster != "build02" {
		t.Errorf("deletion not saved: %v", err)
	}
}

func TestOverrideExpiry(t *testing.T) {
	const job = "pull-ci-org-repo-main-e2e-gcp" // pinned to build02
	for _, tc := range []struct {
		name   string
		expire func(t *testing.T, e *env, d *Dispatcher)
	}{
		{"housekeeping", func(t *testing.T, e *env, d *Dispatcher) {
			n, err := d.expireOverrides()
			if err != nil || n != 1 {
				t.Fatalf("expireOverrides = %d, %v; want 1", n, err)
			}
		}},
		{"dispatch", func(t *testing.T, e *env, d *Dispatcher) { e.dispatch(d) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.newDispatcher(e.options())
			e.dispatch(d)
			if _, err := d.Reschedule(context.Background(), RescheduleRequest{Job: job, Cluster: "build01", Reason: "r", TTL: time.Hour}); err != nil {
				t.Fatal(err)
			}
			e.clock.SetTime(e.clock.Now().Add(59 * time.Minute))
			if n, _ := d.expireOverrides(); n != 0 || len(d.Overrides()) != 1 {
				t.Fatalf("override expired early")
			}
			e.clock.SetTime(e.clock.Now().Add(2 * time.Minute))
			if len(d.Overrides()) != 0 {
				t.Error("an expired override is still listed")
			}
			tc.expire(t, e, d)
			if a := mustLookup(t, d, job); a.Cluster != "build02" || a.Reason != table.ReasonPinned {
				t.Errorf("after expiry: %+v, want pinned to build02", a)
			}
			st, err := store.ReadDir(e.stateDir)
			if err != nil || len(st.Overrides) != 0 {
				t.Errorf("expired override still saved: %v %+v", err, st.Overrides)
			}
		})
	}
}
