// Package health judges each build cluster's health from the outcomes of
// its ProwJobs. Evaluate is pure: samples, the previous states and the time
// in, new states and transitions out; the Prometheus source sits beside it.
package health

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// State is a cluster's health.
type State string

// The states of a cluster.
const (
	// Unknown: too little evidence to judge (too few finished jobs, or no data).
	Unknown State = "unknown"
	// Healthy: the cluster's numbers are below the healthy thresholds.
	Healthy State = "healthy"
	// Unhealthy: the cluster's numbers stayed above an unhealthy threshold for the dwell time.
	Unhealthy State = "unhealthy"
)

// Sample is one cluster's numbers over the query window.
type Sample struct {
	// ErrorShare is the share of the cluster's finished ProwJobs that ended in error, 0..1.
	ErrorShare float64
	// PendingSeconds is how long the cluster's ProwJobs waited to start;
	// NaN when unknown (no pending query, or no answer for the cluster).
	PendingSeconds float64
	// Samples is the number of finished ProwJobs behind ErrorShare.
	Samples float64
}

// Thresholds tune Evaluate. A cluster turns unhealthy when a number is at
// or above its Unhealthy threshold and healthy again only when every number
// is at or below its Healthy one (hysteresis: in between, it keeps its state).
type Thresholds struct {
	// UnhealthyErrorShare and HealthyErrorShare bound the error share;
	// HealthyErrorShare must be below UnhealthyErrorShare.
	UnhealthyErrorShare, HealthyErrorShare float64
	// UnhealthyPending and HealthyPending bound the pending time; 0 ignores it.
	UnhealthyPending, HealthyPending time.Duration
	// MinSamples is the fewest finished jobs that may be judged: fewer is Unknown.
	MinSamples float64
	// Dwell is how long the evidence for a new state must last before the state changes.
	Dwell time.Duration
}

// DefaultThresholds are the thresholds of the dispatcher's flags.
func DefaultThresholds() Thresholds {
	return Thresholds{
		UnhealthyErrorShare: 0.3, HealthyErrorShare: 0.1,
		UnhealthyPending: 30 * time.Minute, HealthyPending: 10 * time.Minute,
		MinSamples: 10, Dwell: 5 * time.Minute,
	}
}

// Validate refuses thresholds that cannot mean anything.
func (t Thresholds) Validate() error {
	var errs []string
	if !(t.UnhealthyErrorShare > 0 && t.UnhealthyErrorShare <= 1) {
		errs = append(errs, fmt.Sprintf("unhealthy error share %g not in (0, 1]", t.UnhealthyErrorShare))
	}
	if !(t.HealthyErrorShare >= 0 && t.HealthyErrorShare < t.UnhealthyErrorShare) {
		errs = append(errs, fmt.Sprintf("healthy error share %g not in [0, unhealthy error share %g)", t.HealthyErrorShare, t.UnhealthyErrorShare))
	}
	if t.UnhealthyPending < 0 || t.HealthyPending < 0 || (t.UnhealthyPending > 0 && t.HealthyPending >= t.UnhealthyPending) {
		errs = append(errs, fmt.Sprintf("healthy pending %s must be below unhealthy pending %s (0 ignores pending time)", t.HealthyPending, t.UnhealthyPending))
	}
	if t.MinSamples < 1 {
		errs = append(errs, fmt.Sprintf("minimum samples %g below 1", t.MinSamples))
	}
	if t.Dwell < 0 {
		errs = append(errs, fmt.Sprintf("dwell %s is negative", t.Dwell))
	}
	if len(errs) > 0 {
		return fmt.Errorf("health thresholds: %s", strings.Join(errs, "; "))
	}
	return nil
}

// ClusterState is what Evaluate knows of one cluster. It is not a wire
// type: PendingSeconds may be NaN or +Inf, which JSON cannot carry.
type ClusterState struct {
	// State is the cluster's health and Since when it holds.
	State State
	Since time.Time
	// Evidence is what the last sample alone says (Unknown for too few
	// samples); State follows it once it has lasted the dwell time.
	Evidence State
	// Candidate, when set, is the state the evidence has pointed to since CandidateSince.
	Candidate      State
	CandidateSince time.Time
	// Reason gives the numbers behind Evidence.
	Reason string
	// Sample is the last sample; nil when there was none.
	Sample *Sample
}

// Transition is a change of a cluster's state.
type Transition struct {
	Cluster string
	From    State
	To      State
	At      time.Time
	// Reason gives the numbers behind the change.
	Reason string
	// Sample is the sample that completed the dwell; nil when there was none.
	Sample *Sample
}

// Evaluate judges each of clusters from its sample (absent: no data) and
// its previous state (absent: Unknown since now). The evidence must point to
// a new state for th.Dwell before the state changes; too few samples is
// Unknown evidence, which never makes a cluster unhealthy and never makes an
// unhealthy one healthy: it stays unhealthy until evidence says otherwise.
// Transitions are sorted by cluster.
func Evaluate(clusters []string, samples map[string]Sample, prev map[string]ClusterState, now time.Time, th Thresholds) (map[string]ClusterState, []Transition) {
	next := make(map[string]ClusterState, len(clusters))
	var transitions []Transition
	for _, c := range slices.Sorted(slices.Values(clusters)) {
		st, ok := prev[c]
		if !ok || st.State == "" {
			st = ClusterState{State: Unknown, Since: now}
		}
		var sp *Sample
		if s, ok := samples[c]; ok {
			sp = &s
		}
		evidence, reason := judge(sp, st.State, th)
		st.Evidence, st.Reason, st.Sample = evidence, reason, sp
		target := evidence
		if evidence == Unknown && st.State == Unhealthy {
			target = Unhealthy // no evidence of recovery
		}
		switch {
		case target == st.State:
			st.Candidate, st.CandidateSince = "", time.Time{}
		case target == Unknown:
			// Too little to judge: nothing acts on Unknown, so no dwell.
			transitions = append(transitions, Transition{Cluster: c, From: st.State, To: Unknown, At: now, Reason: reason, Sample: sp})
			st.State, st.Since, st.Candidate, st.CandidateSince = Unknown, now, "", time.Time{}
		default:
			if st.Candidate != target {
				st.Candidate, st.CandidateSince = target, now
			}
			if now.Sub(st.CandidateSince) >= th.Dwell {
				transitions = append(transitions, Transition{Cluster: c, From: st.State, To: target, At: now,
					Reason: fmt.Sprintf("%s for %s", reason, now.Sub(st.CandidateSince).Round(time.Second)), Sample: sp})
				st.State, st.Since, st.Candidate, st.CandidateSince = target, now, "", time.Time{}
			}
		}
		next[c] = st
	}
	return next, transitions
}

// judge says what one sample alone shows, with its numbers. Between the
// thresholds it shows the current state (Healthy for an Unknown one).
func judge(s *Sample, current State, th Thresholds) (State, string) {
	if s == nil {
		return Unknown, "no data for the cluster"
	}
	pendingKnown := th.UnhealthyPending > 0 && !math.IsNaN(s.PendingSeconds)
	numbers := fmt.Sprintf("error share %.1f%% of %.0f finished jobs", 100*s.ErrorShare, s.Samples)
	if pendingKnown {
		numbers += fmt.Sprintf(", pending %s", seconds(s.PendingSeconds))
	}
	switch {
	case s.Samples < th.MinSamples || math.IsNaN(s.ErrorShare):
		return Unknown, fmt.Sprintf("%.0f finished jobs, fewer than the %.0f needed to judge", s.Samples, th.MinSamples)
	case s.ErrorShare >= th.UnhealthyErrorShare:
		return Unhealthy, fmt.Sprintf("%s: error share at or above %.1f%%", numbers, 100*th.UnhealthyErrorShare)
	case pendingKnown && s.PendingSeconds >= th.UnhealthyPending.Seconds():
		return Unhealthy, fmt.Sprintf("%s: pending at or above %s", numbers, th.UnhealthyPending)
	case s.ErrorShare <= th.HealthyErrorShare && (!pendingKnown || s.PendingSeconds <= th.HealthyPending.Seconds()):
		return Healthy, fmt.Sprintf("%s: below the healthy thresholds", numbers)
	case current == Unhealthy:
		return Unhealthy, fmt.Sprintf("%s: not yet below the healthy thresholds", numbers)
	default:
		return Healthy, fmt.Sprintf("%s: below the unhealthy thresholds", numbers)
	}
}

func seconds(s float64) string {
	if math.IsInf(s, 1) {
		return "without end (no job started)"
	}
	return (time.Duration(s) * time.Second).Round(time.Second).String()
}

// Mode is what the dispatcher does with the health of clusters.
type Mode string

// The modes of --health-mode.
const (
	// ModeOff evaluates nothing.
	ModeOff Mode = "off"
	// ModeReport evaluates and reports what it would do, changing nothing.
	ModeReport Mode = "report"
	// ModeAct drains unhealthy clusters automatically, within bounds.
	ModeAct Mode = "act"
)

// ParseMode parses a --health-mode value.
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeOff, ModeReport, ModeAct:
		return m, nil
	}
	return "", fmt.Errorf("health mode %q: want off, report or act", s)
}

// Status is one cluster's health as the dispatcher reports it.
type Status struct {
	ClusterState
	// Mode is the health mode in force.
	Mode Mode
	// Action says what the dispatcher did, or in report mode would do,
	// about the cluster at the last evaluation, and why.
	Action string
	// Evaluated is when the last evaluation ran.
	Evaluated time.Time
}
