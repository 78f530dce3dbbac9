package kubestate

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/kubestate/v1alpha1"
)

// The roles of Status.
const (
	RoleLeader   = "leader"
	RoleFollower = "follower"
	// RoleFenced is a replica still in a term that may no longer write: its
	// renewal of the Lease is overdue, or a newer leader wrote.
	RoleFenced = "fenced"
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

	// Term is the leader's term this replica leads in, or of the table it adopted.
	Term int64 `json:"term"`
	// Fenced says why this replica, in a term, writes nothing.
	Fenced string `json:"fenced,omitempty"`
	// ServerFence says whether the API server fences the leader's table
	// writes by the Lease (FencePolicy): "on", "missing", or "unknown: why";
	// empty until this replica first led.
	ServerFence string `json:"serverFence,omitempty"`
	// ShardSetRefused says why the table shards in the API are not adopted
	// (the table in force stays).
	ShardSetRefused string `json:"shardSetRefused,omitempty"`
	// RowsRefused counts the rows of the adopted table left out because
	// the cluster config or the rules refuse them; RefusedRows shows some.
	RowsRefused int          `json:"rowsRefused,omitempty"`
	RefusedRows []RefusedRow `json:"refusedRows,omitempty"`
	// RowsUnpublished counts the rows the leader's last publication left
	// out because their shard was full.
	RowsUnpublished int `json:"rowsUnpublished,omitempty"`
	// ReplicasIgnored are the DispatcherReplicas whose admission counts the
	// demand leaves out, with why.
	ReplicasIgnored []string `json:"replicasIgnored,omitempty"`
	// ObjectsRefused are the JobOverrides and ClusterDrains left out
	// because they fail validation, as "Kind name: why".
	ObjectsRefused []string `json:"objectsRefused,omitempty"`
	// PublicationLagSeconds is how long the table served has been behind
	// (see prowjob_dispatcher_table_publication_lag_seconds); 0 when current.
	PublicationLagSeconds float64 `json:"publicationLagSeconds"`
	// Degraded lists what makes this replica serve a table that may be
	// wrong: a lag past Options.StaleAfter, rows refused or unpublished. It
	// does not change readiness: a replica keeps admitting from the table it
	// has, which beats taking every replica out of the webhook's service.
	Degraded []string `json:"degraded,omitempty"`
}

// Status returns the replica's view of the shared state.
func (b *Backend) Status() Status {
	leader, address, _ := b.Leader()
	lag := b.publicationLag()
	lv, pv, fv := b.leader.view(), b.pub.view(), b.follow.view()
	publication, rows := b.served.size()
	s := Status{
		Replica:           b.k.opts.Replica,
		Role:              RoleFollower,
		Leader:            leader,
		LeaderAddress:     address,
		PublicationServed: publication,
		Rows:              rows,
		LastPublished:     pv.lastPublished,
		LastPublishTime:   timePtr(pv.lastPublishTime),
		PendingClaims:     b.writes.pendingClaims(),
		ShardsSkipped:     fv.skipped,
		Term:              fv.adoptedTerm,
		ServerFence:       lv.serverFence,
		ShardSetRefused:   fv.refusedSet,
		RowsRefused:       len(fv.rowsRefused),
		RefusedRows:       fv.rowsRefused[:min(len(fv.rowsRefused), maxRefusedShown)],
		RowsUnpublished:   pv.unpublishedRows,
		ReplicasIgnored:   b.demand.ignoredReplicas(),
		ObjectsRefused:    fv.objectsRefused,
	}
	if lv.leading {
		s.Role, s.Term = RoleLeader, lv.term
		if lv.fenced != nil {
			s.Role, s.Fenced = RoleFenced, lv.fenced.Error()
		}
	}
	s.PublicationLagSeconds = lag.Seconds()
	if lag > b.k.opts.StaleAfter {
		s.Degraded = append(s.Degraded, fmt.Sprintf("the table served is %s behind (more than %s)", lag.Round(time.Second), b.k.opts.StaleAfter))
	}
	if s.RowsRefused > 0 {
		s.Degraded = append(s.Degraded, fmt.Sprintf("%d rows of the leader's table refused", s.RowsRefused))
	}
	if s.RowsUnpublished > 0 {
		s.Degraded = append(s.Degraded, fmt.Sprintf("%d rows left out of the publication: their shards are full", s.RowsUnpublished))
	}
	s.CatchingUp = b.k.catchingUp()
	if pv.lastPublishErr != nil {
		s.LastPublishError = pv.lastPublishErr.Error()
	}
	if err, at := b.k.apiError(); err != nil {
		s.LastAPIError, s.LastAPIErrorTime = err.Error(), timePtr(at)
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

// publicationLag is how long the table this replica serves has been
// behind: since the leader's publication first failed (as the leader's
// record says, on a follower), or since this replica refused the shard set
// in the API; 0 when neither.
func (b *Backend) publicationLag() time.Duration {
	now, leading := b.k.opts.Clock.Now(), b.leader.isLeading()
	since := b.pub.view().unpublishedSince
	if refused := b.follow.view().refusedSince; !refused.IsZero() && (since.IsZero() || refused.Before(since)) {
		since = refused
	}
	if !leading {
		if t := b.leaderUnpublishedSince(); !t.IsZero() && (since.IsZero() || t.Before(since)) {
			since = t
		}
	}
	if since.IsZero() {
		return 0
	}
	return max(now.Sub(since), 0)
}

// leaderUnpublishedSince is, from the cache, since when the Lease holder's
// record says its publication fails; zero when it does not (or is unknown).
func (b *Backend) leaderUnpublishedSince() time.Time {
	ctx := context.Background()
	lease := &coordinationv1.Lease{}
	if err := b.k.cached(ctx, b.k.opts.LeaseName, lease); err != nil ||
		lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" || *lease.Spec.HolderIdentity == b.k.opts.Replica {
		return time.Time{}
	}
	dr := &v1alpha1.DispatcherReplica{}
	if err := b.k.cached(ctx, *lease.Spec.HolderIdentity, dr); err != nil {
		return time.Time{}
	}
	return goTime(dr.Status.UnpublishedSince)
}
