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
