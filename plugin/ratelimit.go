package plugin

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token bucket: Burst requests at once, then one every Every.
type Limit struct {
	Every time.Duration
	Burst int
}

// PlanLimits bound how often /dispatch plan runs. Each plan makes the
// dispatcher compute a whole dispatch, so a commenter must not be able to
// keep it busy; the plan comment written on each push is not limited.
// Trusted users (those who may drain) are exempt.
type PlanLimits struct {
	// PerPR bounds the plans of one PR, whoever asks; default DefaultPlanLimitPerPR.
	PerPR Limit
	// PerUser bounds the plans one user asks for, on any PR; default DefaultPlanLimitPerUser.
	PerUser Limit
}

// Defaults of PlanLimits.
var (
	DefaultPlanLimitPerPR   = Limit{Every: 5 * time.Minute, Burst: 3}
	DefaultPlanLimitPerUser = Limit{Every: 2 * time.Minute, Burst: 5}
)

func (l PlanLimits) withDefaults() PlanLimits {
	if l.PerPR.Every <= 0 || l.PerPR.Burst <= 0 {
		l.PerPR = DefaultPlanLimitPerPR
	}
	if l.PerUser.Every <= 0 || l.PerUser.Burst <= 0 {
		l.PerUser = DefaultPlanLimitPerUser
	}
	return l
}

// maxBuckets bounds the buckets kept; past it, the full ones (idle long
// enough to have refilled) are dropped, which forgets nothing that limits.
const maxBuckets = 10000

// planLimiter keeps a token bucket per PR and per user.
type planLimiter struct {
	limits  PlanLimits
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*rate.Limiter // "pr:org/repo#1" and "user:login"
}

func newPlanLimiter(limits PlanLimits) *planLimiter {
	return &planLimiter{limits: limits.withDefaults(), now: time.Now, buckets: map[string]*rate.Limiter{}}
}

// allow takes a token from the PR's bucket and from the user's, or from
// neither; when it refuses, wait is how long until both have one.
func (l *planLimiter) allow(pr, user string) (ok bool, wait time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.prune(now)
	prR := l.bucket("pr:"+pr, l.limits.PerPR).ReserveN(now, 1)
	userR := l.bucket("user:"+user, l.limits.PerUser).ReserveN(now, 1)
	wait = max(prR.DelayFrom(now), userR.DelayFrom(now))
	if wait > 0 {
		prR.CancelAt(now)
		userR.CancelAt(now)
		return false, wait
	}
	return true, 0
}

func (l *planLimiter) bucket(key string, lim Limit) *rate.Limiter {
	b := l.buckets[key]
	if b == nil {
		b = rate.NewLimiter(rate.Every(lim.Every), lim.Burst)
		l.buckets[key] = b
	}
	return b
}

// prune drops the full buckets once there are more than maxBuckets.
func (l *planLimiter) prune(now time.Time) {
	if len(l.buckets) <= maxBuckets {
		return
	}
	for k, b := range l.buckets {
		if b.TokensAt(now) >= float64(b.Burst()) {
			delete(l.buckets, k)
		}
	}
}
