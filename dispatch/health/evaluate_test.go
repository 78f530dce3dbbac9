package health

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func share(e, n float64) *Sample {
	return &Sample{ErrorShare: e, Samples: n, PendingSeconds: math.NaN()}
}

func TestEvaluateSequences(t *testing.T) {
	th := Thresholds{UnhealthyErrorShare: 0.3, HealthyErrorShare: 0.1, MinSamples: 10, Dwell: 3 * time.Minute,
		UnhealthyPending: 30 * time.Minute, HealthyPending: 10 * time.Minute}
	// Each step is one evaluation a minute apart; nil is no data.
	for _, tc := range []struct {
		name   string
		steps  []*Sample
		states []State  // the state after each step
		trans  []string // the transitions, "minute:from>to"
	}{
		{
			name:   "sustained errors turn unhealthy after the dwell, not before",
			steps:  []*Sample{share(0.05, 50), share(0.05, 50), share(0.05, 50), share(0.05, 50), share(0.5, 50), share(0.5, 50), share(0.5, 50), share(0.5, 50)},
			states: []State{Unknown, Unknown, Unknown, Healthy, Healthy, Healthy, Healthy, Unhealthy},
			trans:  []string{"3:unknown>healthy", "7:healthy>unhealthy"},
		},
		{
			name: "flapping around the unhealthy threshold does not flap",
			steps: []*Sample{share(0.05, 50), share(0.05, 50), share(0.05, 50), share(0.05, 50),
				share(0.31, 50), share(0.29, 50), share(0.31, 50), share(0.29, 50), share(0.31, 50), share(0.29, 50)},
			states: []State{Unknown, Unknown, Unknown, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy, Healthy},
			trans:  []string{"3:unknown>healthy"},
		},
		{
			name: "an unhealthy cluster stays unhealthy between the thresholds (hysteresis) and recovers below the healthy one after the dwell",
			steps: []*Sample{share(0.5, 50), share(0.5, 50), share(0.5, 50), share(0.5, 50),
				share(0.2, 50), share(0.2, 50), share(0.2, 50), share(0.2, 50), share(0.05, 50), share(0.05, 50), share(0.05, 50), share(0.05, 50)},
			states: []State{Unknown, Unknown, Unknown, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy},
			trans:  []string{"3:unknown>unhealthy", "11:unhealthy>healthy"},
		},
		{
			name:   "a dip below the healthy threshold shorter than the dwell does not recover",
			steps:  []*Sample{share(0.5, 50), share(0.5, 50), share(0.5, 50), share(0.5, 50), share(0.0, 50), share(0.0, 50), share(0.5, 50), share(0.0, 50), share(0.0, 50)},
			states: []State{Unknown, Unknown, Unknown, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy},
			trans:  []string{"3:unknown>unhealthy"},
		},
		{
			name:   "too few samples is unknown, never unhealthy",
			steps:  []*Sample{share(1, 2), share(1, 2), share(1, 2), share(1, 9), share(1, 9), share(1, 9)},
			states: []State{Unknown, Unknown, Unknown, Unknown, Unknown, Unknown},
		},
		{
			name:   "a healthy cluster without data turns unknown at once",
			steps:  []*Sample{share(0, 50), share(0, 50), share(0, 50), share(0, 50), nil},
			states: []State{Unknown, Unknown, Unknown, Healthy, Unknown},
			trans:  []string{"3:unknown>healthy", "4:healthy>unknown"},
		},
		{
			name: "an unhealthy cluster without data (drained: no jobs) stays unhealthy, and a gap restarts its recovery dwell",
			steps: []*Sample{share(0.5, 50), share(0.5, 50), share(0.5, 50), share(0.5, 50), nil, share(0, 3),
				share(0, 50), share(0, 50), nil, share(0, 50), share(0, 50), share(0, 50), share(0, 50)},
			states: []State{Unknown, Unknown, Unknown, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Unhealthy, Healthy},
			trans:  []string{"3:unknown>unhealthy", "12:unhealthy>healthy"},
		},
		{
			name:   "long pending turns unhealthy with a low error share",
			steps:  []*Sample{{Samples: 50, PendingSeconds: 3600}, {Samples: 50, PendingSeconds: 3600}, {Samples: 50, PendingSeconds: 3600}, {Samples: 50, PendingSeconds: 3600}},
			states: []State{Unknown, Unknown, Unknown, Unhealthy},
			trans:  []string{"3:unknown>unhealthy"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prev map[string]ClusterState
			var got []string
			for i, s := range tc.steps {
				samples := map[string]Sample{}
				if s != nil {
					samples["build01"] = *s
				}
				now := t0.Add(time.Duration(i) * time.Minute)
				next, trans := Evaluate([]string{"build01"}, samples, prev, now, th)
				if st := next["build01"].State; st != tc.states[i] {
					t.Errorf("minute %d: state %s, want %s (%+v)", i, st, tc.states[i], next["build01"])
				}
				for _, tr := range trans {
					got = append(got, strconv.Itoa(i)+":"+string(tr.From)+">"+string(tr.To))
					if tr.Reason == "" || tr.Cluster != "build01" || !tr.At.Equal(now) {
						t.Errorf("minute %d: transition %+v lacks its reason, cluster or time", i, tr)
					}
				}
				prev = next
			}
			if strings.Join(got, " ") != strings.Join(tc.trans, " ") {
				t.Errorf("transitions %q, want %q", got, tc.trans)
			}
		})
	}
}

func TestEvaluateReasonHasTheNumbers(t *testing.T) {
	th := DefaultThresholds()
	th.Dwell = 0
	next, trans := Evaluate([]string{"build01", "build02"}, map[string]Sample{"build01": {ErrorShare: 0.42, Samples: 57, PendingSeconds: 120}}, nil, t0, th)
	if len(trans) != 1 || trans[0].To != Unhealthy || trans[0].Cluster != "build01" {
		t.Fatalf("transitions %+v, want build01 unknown>unhealthy only", trans)
	}
	for _, want := range []string{"42.0%", "57 finished jobs", "pending 2m0s", "30.0%"} {
		if !strings.Contains(trans[0].Reason, want) {
			t.Errorf("reason %q lacks %q", trans[0].Reason, want)
		}
	}
	if st := next["build02"]; st.State != Unknown || st.Reason != "no data for the cluster" {
		t.Errorf("build02 without data: %+v, want unknown for lack of data", st)
	}
}

func TestThresholdsValidate(t *testing.T) {
	if err := DefaultThresholds().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for name, mut := range map[string]func(*Thresholds){
		"healthy above unhealthy": func(t *Thresholds) { t.HealthyErrorShare = 0.5 },
		"share over 1":            func(t *Thresholds) { t.UnhealthyErrorShare = 1.5 },
		"pending inverted":        func(t *Thresholds) { t.HealthyPending = time.Hour },
		"no min samples":          func(t *Thresholds) { t.MinSamples = 0 },
	} {
		th := DefaultThresholds()
		mut(&th)
		if err := th.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
