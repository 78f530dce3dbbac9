package demand

import (
	"context"
	"sort"
	"sync"
	"time"

	"k8s.io/utils/clock"
)

// DefaultWindow is the demand window of Admissions and Prometheus.
const DefaultWindow = 14 * 24 * time.Hour

const day = 24 * time.Hour

// Admissions counts admitted ProwJobs by job in per-day (UTC) buckets over a
// sliding window; its demand is the count within the window. It is the
// embedded demand source when no other is configured. Safe for concurrent use.
type Admissions struct {
	clock clock.PassiveClock
	days  int64 // window length in buckets

	mu      sync.Mutex
	buckets map[int64]map[string]float64 // UTC day number -> job -> count
	oldest  int64                        // no bucket older than this is kept
}

// NewAdmissions returns an empty counter. A window <= 0 means DefaultWindow;
// it is rounded up to whole days. A nil clock means the real one.
func NewAdmissions(window time.Duration, clk clock.PassiveClock) *Admissions {
	if window <= 0 {
		window = DefaultWindow
	}
	if clk == nil {
		clk = clock.RealClock{}
	}
	return &Admissions{
		clock:   clk,
		days:    int64((window + day - 1) / day),
		buckets: map[int64]map[string]float64{},
	}
}

func dayOf(t time.Time) int64 {
	s := t.Unix()
	if s < 0 {
		return (s+1)/int64(day/time.Second) - 1
	}
	return s / int64(day/time.Second)
}

// firstDay is the oldest day inside the window ending today.
func (a *Admissions) firstDay(now time.Time) int64 { return dayOf(now) - a.days + 1 }

// Record counts one admission of job at the given time. Admissions older
// than the window are ignored. It is cheap: one lock and one map increment.
func (a *Admissions) Record(job string, at time.Time) {
	d := dayOf(at)
	a.mu.Lock()
	defer a.mu.Unlock()
	if d < a.oldest {
		return
	}
	b := a.buckets[d]
	if b == nil {
		a.prune(a.clock.Now())
		if d < a.oldest {
			return
		}
		b = map[string]float64{}
		a.buckets[d] = b
	}
	b[job]++
}

// prune drops buckets that left the window. Callers hold mu.
func (a *Admissions) prune(now time.Time) {
	first := a.firstDay(now)
	if first <= a.oldest {
		return
	}
	a.oldest = first
	for d := range a.buckets {
		if d < first {
			delete(a.buckets, d)
		}
	}
}

// Demand returns each job's admissions within the window ending now.
func (a *Admissions) Demand(ctx context.Context) (map[string]float64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prune(a.clock.Now())
	out := map[string]float64{}
	for _, b := range a.buckets {
		for job, n := range b {
			out[job] += n
		}
	}
	return out, nil
}

// AdmissionCounts is a snapshot of Admissions for the store.
type AdmissionCounts struct {
	// Days are the per-day buckets, oldest first.
	Days []DayCounts `json:"days"`
}

// DayCounts is one UTC day's admissions by job.
type DayCounts struct {
	// Day is the day's start, UTC.
	Day time.Time `json:"day"`
	// Jobs maps a job name to its admissions that day.
	Jobs map[string]float64 `json:"jobs"`
}

// Snapshot returns a copy of the counts within the window.
func (a *Admissions) Snapshot() *AdmissionCounts {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.prune(a.clock.Now())
	s := &AdmissionCounts{Days: make([]DayCounts, 0, len(a.buckets))}
	for d, b := range a.buckets {
		jobs := make(map[string]float64, len(b))
		for j, n := range b {
			jobs[j] = n
		}
		s.Days = append(s.Days, DayCounts{Day: time.Unix(d*int64(day/time.Second), 0).UTC(), Jobs: jobs})
	}
	sort.Slice(s.Days, func(i, j int) bool { return s.Days[i].Day.Before(s.Days[j].Day) })
	return s
}

// Restore replaces the counts with a snapshot; days outside the window and
// negative counts are dropped. A nil snapshot clears the counts.
func (a *Admissions) Restore(s *AdmissionCounts) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.buckets = map[int64]map[string]float64{}
	a.oldest = 0
	a.prune(a.clock.Now())
	if s == nil {
		return
	}
	for _, dc := range s.Days {
		d := dayOf(dc.Day)
		if d < a.oldest {
			continue
		}
		b := a.buckets[d]
		if b == nil {
			b = map[string]float64{}
			a.buckets[d] = b
		}
		for j, n := range dc.Jobs {
			if n > 0 {
				b[j] += n
			}
		}
	}
}
