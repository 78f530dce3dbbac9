package kubestate

import (
	"slices"
	"time"
)

// The roles of Status.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
)

// Status is what a replica of the kubernetes state backend reports on its
// health endpoint.
type Status struct {
	// Replica is this replica's name; Role whether it leads.
	Replica string `json:"replica"`
	Role    string `json:"role"`
	// Leader is the replica holding the Lease (empty when none does), and
	// LeaderAddress its API's address.
	Leader        string `json:"leader,omitempty"`
	LeaderAddress string `json:"leaderAddress,omitempty"`
	// PublicationServed is the publication of the table this replica
	// serves; Rows the rows it holds.
	PublicationServed int64 `json:"publicationServed"`
	Rows              int   `json:"rows"`
	// LastPublished is the last publication this replica made as leader,
	// LastPublishTime when it last published (or found nothing to write)
	// and LastPublishError why its last attempt failed.
	LastPublished    int64      `json:"lastPublished,omitempty"`
	LastPublishTime  *time.Time `json:"lastPublishTime,omitempty"`
	LastPublishError string     `json:"lastPublishError,omitempty"`
	// LastAPIError is the last failed write or list, at LastAPIErrorTime.
	LastAPIError     string     `json:"lastAPIError,omitempty"`
	LastAPIErrorTime *time.Time `json:"lastAPIErrorTime,omitempty"`
	// CatchingUp is set for a while after an API error: reads go to the API
	// server itself and the shared state is polled, since the informers may
	// lag behind after an outage.
	CatchingUp bool `json:"catchingUp,omitempty"`
	// PendingClaims are the rows placed at admission whose JobPlacement is
	// being retried.
	PendingClaims int `json:"pendingClaims"`
	// ShardsSkipped are the table shards that failed their check: their rows
	// are not applied.
	ShardsSkipped []SkippedShard `json:"shardsSkipped,omitempty"`
}

// Status returns the replica's view of the shared state.
func (b *Backend) Status() Status {
	leader, address, _ := b.Leader()
	b.mu.Lock()
	defer b.mu.Unlock()
	s := Status{
		Replica:           b.opts.Replica,
		Role:              RoleFollower,
		Leader:            leader,
		LeaderAddress:     address,
		PublicationServed: b.publication,
		Rows:              len(b.tableRows),
		LastPublished:     b.lastPublished,
		LastPublishTime:   timePtr(b.lastPublishTime),
		PendingClaims:     len(b.pending),
		ShardsSkipped:     slices.Clone(b.skipped),
	}
	if b.leading {
		s.Role = RoleLeader
	}
	s.CatchingUp = b.opts.Clock.Now().Before(b.catchUpUntil)
	if b.lastPublishErr != nil {
		s.LastPublishError = b.lastPublishErr.Error()
	}
	if b.lastAPIErr != nil {
		s.LastAPIError, s.LastAPIErrorTime = b.lastAPIErr.Error(), timePtr(b.lastAPIErrAt)
	}
	return s
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}
