package demand

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
)

// MaxJobDemand is the largest demand one job may have: a job that ran every
// second of a 14-day window, weighted by a day-long duration, stays far
// below it. A larger value is a broken query or file, not demand.
const MaxJobDemand = 1e12

// ErrImplausible marks demand that a source answered but that cannot be
// true: a value that is not finite, negative or over MaxJobDemand, an empty
// answer, or a total that fell too far against the last good demand.
var ErrImplausible = errors.New("implausible demand")

// Check returns an error naming the first jobs (in name order) whose demand
// is not a finite number in 0..MaxJobDemand.
func Check(dm map[string]float64) error {
	var errs []error
	for _, job := range slices.Sorted(maps.Keys(dm)) {
		if v := dm[job]; math.IsNaN(v) || math.IsInf(v, 0) || v < 0 || v > MaxJobDemand {
			errs = append(errs, fmt.Errorf("job %q: demand %v not in 0..%g", job, v, MaxJobDemand))
			if len(errs) == 5 {
				errs = append(errs, errors.New("..."))
				break
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrImplausible, errors.Join(errs...))
	}
	return nil
}

// Plausible checks a new answer against the last good demand: it must hold
// some job, and its total may fall by at most maxDrop (a fraction, 0..1) of
// the last good total. last may be nil (no comparison).
func Plausible(next, last map[string]float64, maxDrop float64) error {
	if err := Check(next); err != nil {
		return err
	}
	if len(next) == 0 {
		return fmt.Errorf("%w: the answer holds no job", ErrImplausible)
	}
	if len(last) == 0 || maxDrop >= 1 {
		return nil
	}
	total, lastTotal := sum(next), sum(last)
	if lastTotal > 0 && total < (1-maxDrop)*lastTotal {
		return fmt.Errorf("%w: total demand %.6g is %.0f%% below the last good %.6g (%d jobs, last %d); at most %.0f%% is accepted",
			ErrImplausible, total, 100*(1-total/lastTotal), lastTotal, len(next), len(last), 100*maxDrop)
	}
	return nil
}

func sum(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}
