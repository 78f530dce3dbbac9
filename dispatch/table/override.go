package table

import "time"

// Override is an operator's reschedule: the job runs on Cluster until Expires
// (never, when zero) or until the override is deleted. The engine honours it
// ahead of every other rule.
type Override struct {
	// Job is the Prow job name.
	Job string `json:"job"`
	// Cluster is where the job must run.
	Cluster string `json:"cluster"`
	// Reason is the operator's reason.
	Reason string `json:"reason"`
	// By is who asked (a GitHub login, "api").
	By string `json:"by,omitempty"`
	// CreatedAt is when the override was made.
	CreatedAt time.Time `json:"createdAt"`
	// Expires is when the override lapses; zero means never.
	Expires time.Time `json:"expires,omitempty"`
}

// Active reports whether the override is in force at now.
func (o Override) Active(now time.Time) bool {
	return o.Expires.IsZero() || now.Before(o.Expires)
}

// Drain is an operator's temporary change to one cluster of the
// cluster config: a drain (no job is balanced onto it, and every job that
// can move leaves it) or a capacity cap, until Expires. Jobs that only that
// cluster can run stay (its cluster jobs, jobs overridden there, jobs whose
// capability no other usable cluster has).
type Drain struct {
	// Cluster is the cluster's name.
	Cluster string `json:"cluster"`
	// Capacity, when above 0, caps the cluster's capacity instead of draining it.
	Capacity int `json:"capacity,omitempty"`
	// Reason is the operator's reason.
	Reason string `json:"reason"`
	// By is who asked.
	By string `json:"by,omitempty"`
	// CreatedAt is when the override was made.
	CreatedAt time.Time `json:"createdAt"`
	// Expires is when the override lapses; always set.
	Expires time.Time `json:"expires"`
}

// Drain reports whether the override drains the cluster (rather than capping it).
func (o Drain) Drain() bool { return o.Capacity <= 0 }

// Active reports whether the override is in force at now.
func (o Drain) Active(now time.Time) bool { return now.Before(o.Expires) }
