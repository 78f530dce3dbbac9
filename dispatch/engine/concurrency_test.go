package engine_test

import (
	"fmt"
	"sync"
	"testing"
)

// TestConcurrentUse runs Place, Best, CanRun, Explain and Loads at once; run with -race.
func TestConcurrentUse(t *testing.T) {
	e, _, _ := dispatch(t, background(t))
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				j := job(fmt.Sprintf("w%d-%d", w, i))
				if _, err := e.Place(j); err != nil {
					t.Error(err)
					return
				}
				_, _ = e.Best(j)
				_ = e.CanRun(j, "build02")
				_ = e.Explain(j)
				_ = e.Loads()
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, l := range e.Loads() {
		total += l.Jobs
	}
	if total != 40+4*50 {
		t.Errorf("%d jobs in the loads, want %d", total, 40+4*50)
	}
}
