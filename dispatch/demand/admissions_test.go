package demand

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"
)

func TestAdmissionsWindow(t *testing.T) {
	start := time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(start)
	a := NewAdmissions(3*24*time.Hour, clk)
	a.Record("a", start)
	a.Record("a", start.Add(time.Hour))
	a.Record("b", start.Add(-2*24*time.Hour)) // the oldest day still inside a 3-day window
	a.Record("c", start.Add(-3*24*time.Hour)) // outside the window: ignored
	steps := []struct {
		advance time.Duration
		record  []string
		want    map[string]float64
	}{
		{0, nil, map[string]float64{"a": 2, "b": 1}},
		{24 * time.Hour, []string{"b"}, map[string]float64{"a": 2, "b": 1}}, // day -2 left, a new b arrived
		{24 * time.Hour, nil, map[string]float64{"a": 2, "b": 1}},
		{24 * time.Hour, nil, map[string]float64{"b": 1}},
		{24 * time.Hour, nil, map[string]float64{}},
	}
	for i, s := range steps {
		clk.SetTime(clk.Now().Add(s.advance))
		for _, j := range s.record {
			a.Record(j, clk.Now())
		}
		got, err := a.Demand(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, s.want) {
			t.Errorf("step %d (%s): demand %v, want %v", i, clk.Now().Format(time.DateTime), got, s.want)
		}
	}
}

func TestAdmissionsSnapshotRestore(t *testing.T) {
	now := time.Date(2026, 11, 14, 23, 59, 0, 0, time.UTC)
	clk := clocktesting.NewFakePassiveClock(now)
	a := NewAdmissions(0, clk) // default 14 days
	for d := 0; d < 14; d++ {
		for i := 0; i <= d; i++ {
			a.Record(fmt.Sprintf("job-%d", d%3), now.Add(-time.Duration(d)*24*time.Hour))
		}
	}
	want, _ := a.Demand(context.Background())
	snap := a.Snapshot()
	if len(snap.Days) != 14 {
		t.Fatalf("snapshot has %d days, want 14", len(snap.Days))
	}
	for i := 1; i < len(snap.Days); i++ {
		if !snap.Days[i-1].Day.Before(snap.Days[i].Day) {
			t.Fatalf("snapshot days not sorted: %v", snap.Days)
		}
	}
	b := NewAdmissions(0, clk)
	b.Restore(snap)
	got, _ := b.Demand(context.Background())
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restored demand %v, want %v", got, want)
	}
	// A snapshot restored a week later loses the week that left the window.
	later := NewAdmissions(0, clocktesting.NewFakePassiveClock(now.Add(7*24*time.Hour)))
	later.Restore(snap)
	got, _ = later.Demand(context.Background())
	var total, wantTotal float64
	for _, n := range got {
		total += n
	}
	for d := 0; d < 7; d++ { // days 0..6 back from now are still inside
		wantTotal += float64(d + 1)
	}
	if total != wantTotal {
		t.Errorf("restored a week later: total %v, want %v", total, wantTotal)
	}
	later.Restore(nil)
	if got, _ := later.Demand(context.Background()); len(got) != 0 {
		t.Errorf("Restore(nil) kept %v", got)
	}
}

func TestAdmissionsConcurrent(t *testing.T) {
	clk := clocktesting.NewFakePassiveClock(time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC))
	a := NewAdmissions(0, clk)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 500; i++ {
				a.Record("job", clk.Now())
				if i%100 == 0 {
					_, _ = a.Demand(context.Background())
					_ = a.Snapshot()
				}
			}
		}()
	}
	wg.Wait()
	got, _ := a.Demand(context.Background())
	if got["job"] != 4000 {
		t.Errorf("demand %v after 4000 concurrent records", got["job"])
	}
}

func BenchmarkRecord(b *testing.B) {
	a := NewAdmissions(0, nil)
	now := time.Now()
	jobs := make([]string, 1000)
	for i := range jobs {
		jobs[i] = fmt.Sprintf("pull-ci-org-repo-main-job-%d", i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			a.Record(jobs[i%len(jobs)], now)
			i++
		}
	})
}
