package loadtest

import (
	"testing"
	"time"
)

// TestSchedule checks the harness's send schedule: the warm-up ramps up
// from a trickle to the full rate, so the client does not open hundreds of
// TLS connections at once, and the measured window runs at the full rate.
func TestSchedule(t *testing.T) {
	for _, tc := range []struct {
		rate             int
		warmup, duration time.Duration
		warm, total      int
	}{
		{rate: 1000, warmup: 2 * time.Second, duration: 60 * time.Second, warm: 1000, total: 61000},
		{rate: 200, warmup: 2 * time.Second, duration: time.Second, warm: 200, total: 400},
		{rate: 100, warmup: 0, duration: time.Second, warm: 0, total: 100},
	} {
		warm, total, due := schedule(tc.rate, tc.warmup, tc.duration)
		if warm != tc.warm || total != tc.total {
			t.Errorf("rate %d, warm-up %v, duration %v: %d and %d requests, want %d and %d", tc.rate, tc.warmup, tc.duration, warm, total, tc.warm, tc.total)
		}
		interval := time.Second / time.Duration(tc.rate)
		// The rate over each tenth of the warm-up, then over the measured window.
		inTenth := make([]int, 10)
		for i := range total {
			d := due(i)
			if i > 0 && d < due(i-1) {
				t.Fatalf("request %d due at %v, before request %d at %v", i, d, i-1, due(i-1))
			}
			switch {
			case i < warm:
				inTenth[int(10*d/tc.warmup)]++
			case d != tc.warmup+time.Duration(i-warm)*interval:
				t.Fatalf("request %d of the measured window due at %v, want %v", i, d, tc.warmup+time.Duration(i-warm)*interval)
			}
		}
		if warm == 0 {
			continue
		}
		full := float64(tc.rate) * tc.warmup.Seconds() / 10 // requests per tenth at the full rate
		if first, last := float64(inTenth[0]), float64(inTenth[9]); first > 0.1*full || last < 0.85*full || last > full {
			t.Errorf("rate %d: %d requests in the first tenth of the warm-up and %d in the last, want a ramp from about 0 to about %.0f", tc.rate, inTenth[0], inTenth[9], full)
		}
	}
}
