// Package failover plans health-driven failover: from each build cluster's
// health, the drains and caps in force, the cluster config and the bounds,
// Plan lists the drains, renewals and undrains to make, each with why. Plan
// is pure; the dispatcher applies its actions through its API.
package failover

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/config"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/health"
	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// Kind is what an Action asks; except for None, it is the "action" label of
// the health_actions_total metric.
type Kind string

// The kinds of actions.
const (
	// None changes nothing and counts nothing: Note says why the cluster is left as it is.
	None Kind = ""
	// Drain drains the cluster automatically for Bounds.DrainTTL (in
	// report mode: previews that drain). The drain may be refused for
	// stranded jobs; then Plan is asked again with the cluster in Input.Failed.
	Drain Kind = "drain"
	// Renew drains the cluster again for Bounds.DrainTTL: its automatic
	// drain is past half its TTL and it is still unhealthy.
	Renew Kind = "renew"
	// Undrain cancels the cluster's automatic drain, but no operator's (in
	// report mode: only says it would).
	Undrain Kind = "undrain"
	// RefusedBound is a drain the bounds refuse; Note says which bound.
	RefusedBound Kind = "refused_bound"
)

// Action is one thing failover does about a cluster.
type Action struct {
	Cluster string
	Kind    Kind
	// Reason is the reason of the drain that Drain and Renew make.
	Reason string
	// Note is what the cluster's health shows of the action: for Renew
	// and an Undrain in act mode, once it is done; empty for Drain, whose
	// note says what the drain did.
	Note string
}

// Bounds limit automatic drains.
type Bounds struct {
	// MaxDrained is the most clusters drained automatically at once.
	MaxDrained int
	// MaxDrainedShare, above 0, is the most of the usable capacity (the
	// clusters not blocked by the cluster config) drained automatically at once, 0..1.
	MaxDrainedShare float64
	// DrainTTL is the TTL of an automatic drain.
	DrainTTL time.Duration
}

// Input is what Plan decides on.
type Input struct {
	Now time.Time
	// Act is the act mode: false only says what it would do (report mode).
	Act bool
	// Clusters are the clusters of the cluster config.
	Clusters []config.Cluster
	// States are the clusters' health states, by cluster.
	States map[string]health.ClusterState
	// Overrides are the drains and caps in force, by cluster.
	Overrides map[string]table.Drain
	// By is the By of automatic drains; others' drains and caps are left alone.
	By     string
	Bounds Bounds
	// Failed are the clusters whose Drain or Undrain, planned by an
	// earlier Plan of the same evaluation, did not happen: Plan assumes
	// every action it lists happens, and a failed drain no longer counts
	// toward the bounds while a failed undrain still does.
	Failed map[string]bool
}

// Plan lists the actions for the clusters of in.States, sorted by cluster;
// a cluster that needs none and has nothing to show has no action. The
// bounds count the automatic drains in force and the drains listed before.
func Plan(in Input) []Action {
	capacity := map[string]int{}
	blocked := map[string]bool{}
	total := 0
	for _, c := range in.Clusters {
		capacity[c.Name] = c.Capacity
		blocked[c.Name] = c.Blocked
		if !c.Blocked {
			total += c.Capacity
		}
	}
	drained := map[string]bool{} // the automatic drains in force
	for c, o := range in.Overrides {
		if o.By == in.By && o.Drain() && o.Active(in.Now) {
			drained[c] = true
		}
	}
	until := func(o table.Drain) string {
		return "drained automatically until " + o.Expires.UTC().Format("2006-01-02T15:04:05Z")
	}
	would := func(s string) string {
		if in.Act {
			return s
		}
		return "would " + s + " (report mode)"
	}
	var out []Action
	for _, c := range slices.Sorted(maps.Keys(in.States)) {
		st := in.States[c]
		o, overridden := in.Overrides[c]
		unhealthy := st.State == health.Unhealthy && st.Evidence == health.Unhealthy
		reason := "unhealthy: " + st.Reason
		a := Action{Cluster: c}
		switch {
		case unhealthy && drained[c] && !in.Act:
			a.Note = "drained automatically; renewing is left to act mode"
		case unhealthy && drained[c] && o.Expires.Sub(in.Now) > in.Bounds.DrainTTL/2:
			a.Note = until(o)
		case unhealthy && drained[c]:
			a.Kind, a.Reason, a.Note = Renew, reason, "automatic drain renewed for "+in.Bounds.DrainTTL.String()
		case st.State == health.Unhealthy && blocked[c]:
			a.Note = "left alone: blocked by the cluster config"
		case unhealthy && overridden && o.By != in.By:
			what := "drained"
			if !o.Drain() {
				what = fmt.Sprintf("capped to %d", o.Capacity)
			}
			a.Note = fmt.Sprintf("left alone: %s by %s: %s", what, o.By, o.Reason)
		case unhealthy:
			share := 0.0
			if total > 0 {
				for dc := range drained {
					share += float64(capacity[dc])
				}
				share = (share + float64(capacity[c])) / float64(total)
			}
			switch {
			case len(drained) >= in.Bounds.MaxDrained:
				a.Kind, a.Note = RefusedBound, fmt.Sprintf("not drained: %d cluster(s) already drained automatically, the most allowed at once is %d", len(drained), in.Bounds.MaxDrained)
			case in.Bounds.MaxDrainedShare > 0 && share > in.Bounds.MaxDrainedShare:
				a.Kind, a.Note = RefusedBound, fmt.Sprintf("not drained: automatic drains would take %.0f%% of the capacity, over the %.0f%% allowed", 100*share, 100*in.Bounds.MaxDrainedShare)
			default:
				a.Kind, a.Reason = Drain, reason
				if !in.Failed[c] {
					drained[c] = true // counts toward the bounds, in report mode too
				}
			}
		case st.State == health.Healthy && drained[c]:
			a.Kind, a.Note = Undrain, would("cancel the automatic drain")
			if in.Act {
				a.Note = "healthy again: automatic drain cancelled; jobs return within the move budget"
				if !in.Failed[c] {
					delete(drained, c)
				}
			}
		case drained[c]:
			a.Note = until(o) + " (no evidence of recovery yet)"
		default:
			continue
		}
		out = append(out, a)
	}
	return out
}
