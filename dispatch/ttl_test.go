package dispatch

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TestTTLBounds: every TTL an operator gives (a drain's, a cap's, a
// reschedule's) is refused below MinTTL and above its maximum, naming the
// field and the value; a reschedule without one lasts the maximum.
func TestTTLBounds(t *testing.T) {
	e := newEnv(t)
	d := e.newDispatcher(e.options())
	e.dispatch(d)
	job := d.cache.Snapshot().Assignments[0].Job
	tests := []struct {
		name    string
		do      func() error
		wantErr string // "" means accepted
	}{
		{name: "drain of 1ns", wantErr: "ttl 1ns is under the minimum 1m0s", do: func() error {
			_, err := d.Drain(context.Background(), DrainRequest{Cluster: "build03", TTL: time.Nanosecond, Reason: "r"})
			return err
		}},
		{name: "cap of 59s", wantErr: "ttl 59s is under the minimum 1m0s", do: func() error {
			_, err := d.Drain(context.Background(), DrainRequest{Cluster: "build03", Capacity: 40, TTL: 59 * time.Second, Reason: "r"})
			return err
		}},
		{name: "preview of a drain of 1ns", wantErr: "ttl 1ns is under the minimum", do: func() error {
			_, err := d.PreviewDrain(context.Background(), DrainRequest{Cluster: "build03", TTL: time.Nanosecond, Reason: "r"})
			return err
		}},
		{name: "reschedule of 2562047h", wantErr: "ttl 2562047h0m0s is over the maximum 168h0m0s", do: func() error {
			_, err := d.Reschedule(context.Background(), RescheduleRequest{Job: job, TTL: 2562047 * time.Hour, Reason: "r"})
			return err
		}},
		{name: "reschedule of 1ns", wantErr: "ttl 1ns is under the minimum 1m0s", do: func() error {
			_, err := d.Reschedule(context.Background(), RescheduleRequest{Job: job, TTL: time.Nanosecond, Reason: "r"})
			return err
		}},
		{name: "reschedule of -1h", wantErr: "ttl -1h0m0s is under the minimum 1m0s", do: func() error {
			_, err := d.Reschedule(context.Background(), RescheduleRequest{Job: job, TTL: -time.Hour, Reason: "r"})
			return err
		}},
		{name: "reschedule of a minute", do: func() error {
			_, err := d.Reschedule(context.Background(), RescheduleRequest{Job: job, TTL: time.Minute, Reason: "r"})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.do()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want ErrInvalid with %q", err, tc.wantErr)
			}
		})
	}
	if got := d.Drains(); len(got) != 0 {
		t.Errorf("refused drains left %+v", got)
	}

	// Without a TTL, a reschedule lasts the maximum.
	res, err := d.Reschedule(context.Background(), RescheduleRequest{Job: job, Reason: "r"})
	if err != nil {
		t.Fatal(err)
	}
	if want := res.Override.CreatedAt.Add(DefaultMaxOverrideTTL); !res.Override.Expires.Equal(want) {
		t.Errorf("a reschedule without a TTL expires at %v, want %v (the maximum)", res.Override.Expires, want)
	}
}

// TestSharedOverridesOutOfBounds: drains and overrides that kubectl wrote
// to the shared state with expiries no request could have made are refused
// (the jobs keep their placement); those within the bounds apply, and a job
// override without an expiry lasts the maximum from its creation.
func TestSharedOverridesOutOfBounds(t *testing.T) {
	_, _, _, fs := replicas(t, 1)
	f := fs[0]
	now := f.clock.Now()
	job := f.cache.Snapshot().Assignments[0].Job
	to := "build03"
	if mustLookup(t, f, job).Cluster == to {
		to = "build01"
	}
	year := 365 * 24 * time.Hour
	for _, tc := range []struct {
		name  string
		o     table.Override
		apply bool
	}{
		{name: "a hundred years", o: table.Override{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: now, Expires: now.Add(100 * year)}},
		{name: "created in the future", o: table.Override{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: now.Add(year), Expires: now.Add(year + time.Hour)}},
		{name: "1ns", o: table.Override{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: now, Expires: now.Add(time.Nanosecond)}},
		{name: "a day", o: table.Override{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: now, Expires: now.Add(24 * time.Hour)}, apply: true},
		{name: "no expiry, created a day ago", o: table.Override{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: now.Add(-24 * time.Hour)}, apply: true},
		{name: "no expiry, created a year ago", o: table.Override{Job: job, Cluster: to, Reason: "kubectl", CreatedAt: now.Add(-year)}},
	} {
		t.Run("job override "+tc.name, func(t *testing.T) {
			f.setOverrides([]table.Override{tc.o})
			got := f.Overrides()
			if applied := len(got) == 1 && mustLookup(t, f, job).Cluster == to; applied != tc.apply {
				t.Errorf("override %+v: applied %v (overrides %+v), want %v", tc.o, applied, got, tc.apply)
			}
			if len(got) == 1 && (got[0].Expires.IsZero() || got[0].Expires.Sub(now) > DefaultMaxOverrideTTL) {
				t.Errorf("override in force until %v, want at most %s from now", got[0].Expires, DefaultMaxOverrideTTL)
			}
			f.setOverrides(nil)
		})
	}
	for _, tc := range []struct {
		name  string
		o     table.Drain
		apply bool
	}{
		{name: "a hundred years", o: table.Drain{Cluster: "build03", Reason: "kubectl", CreatedAt: now, Expires: now.Add(100 * year)}},
		{name: "no creation time, a hundred years", o: table.Drain{Cluster: "build03", Reason: "kubectl", Expires: now.Add(100 * year)}},
		{name: "1ns", o: table.Drain{Cluster: "build03", Reason: "kubectl", CreatedAt: now, Expires: now.Add(time.Nanosecond)}},
		{name: "a day", o: table.Drain{Cluster: "build03", Reason: "kubectl", CreatedAt: now, Expires: now.Add(24 * time.Hour)}, apply: true},
	} {
		t.Run("cluster drain "+tc.name, func(t *testing.T) {
			f.setDrains([]table.Drain{tc.o})
			if applied := len(f.Drains()) == 1; applied != tc.apply {
				t.Errorf("drain %+v: applied %v, want %v", tc.o, applied, tc.apply)
			}
			f.setDrains(nil)
		})
	}
}

// TestAnExpiredDrainGivesItsJobsBack: once a drain expires, the jobs it
// moved are free again and the dispatch on its expiry balances them back:
// the drained cluster ends with as many jobs as before the drain, although
// another cluster (build02, with the only kvm jobs) stays overloaded.
func TestAnExpiredDrainGivesItsJobsBack(t *testing.T) {
	for _, capacity := range []int{0, 1} {
		e := newEnv(t)
		d := e.newDispatcher(e.options())
		e.dispatch(d)
		count := func() int {
			n := 0
			for _, a := range d.cache.Snapshot().Assignments {
				if a.Cluster == "build03" {
					n++
				}
			}
			return n
		}
		before := count()
		plan, err := d.Drain(context.Background(), DrainRequest{Cluster: "build03", Capacity: capacity, TTL: time.Hour, Reason: "upgrade"})
		if err != nil {
			t.Fatal(err)
		}
		if len(plan.Moves) == 0 || count() >= before {
			t.Fatalf("capacity %d: the drain moved %d job(s), build03 runs %d of %d", capacity, len(plan.Moves), count(), before)
		}
		e.clock.SetTime(e.clock.Now().Add(time.Hour))
		if n, err := d.expireDrains(); n != 1 || err != nil {
			t.Fatalf("expireDrains = %d, %v", n, err)
		}
		if got := count(); got != before {
			t.Errorf("capacity %d: build03 runs %d job(s) after its drain expired, %d before it", capacity, got, before)
		}
		for _, m := range plan.Moves {
			if a := mustLookup(t, d, m.Job); a.Cluster != m.From {
				t.Errorf("capacity %d: %s moved %s -> %s by the drain, on %s after it expired", capacity, m.Job, m.From, m.To, a.Cluster)
			}
		}
	}
}
