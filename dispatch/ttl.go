package dispatch

import (
	"fmt"
	"strings"
	"time"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/table"
)

// TTL bounds. Every drain, cap and job override lasts at least MinTTL and at
// most its maximum (Options.MaxDrainTTL, Options.MaxOverrideTTL), whether it
// comes from the API, the plugin, the health failover, the state dir or the
// shared state (where kubectl may write anything the CRD schema allows).
const (
	// MinTTL is the shortest TTL: a shorter one would lapse before the
	// dispatch that applies it, leaving moved jobs nobody asked to move.
	MinTTL = time.Minute
	// DefaultMaxOverrideTTL bounds how long a job override (a reschedule)
	// lasts; a reschedule without a TTL lasts this long.
	DefaultMaxOverrideTTL = 7 * 24 * time.Hour
	// maxClockSkew is how far ahead of this replica's clock the replica
	// that wrote a shared override may have been.
	maxClockSkew = time.Minute
)

// checkTTL refuses a TTL outside MinTTL..max; what names the request.
func checkTTL(what string, ttl, max time.Duration) error {
	switch {
	case ttl < MinTTL:
		return fmt.Errorf("%s: ttl %s is under the minimum %s: %w", what, ttl, MinTTL, ErrInvalid)
	case ttl > max:
		return fmt.Errorf("%s: ttl %s is over the maximum %s: %w", what, ttl, max, ErrInvalid)
	}
	return nil
}

// checkExpiry refuses the expiry of an override read from the state that
// no request within the bounds could have made: one under MinTTL or over
// max after its creation, or more than max (and the clock skew) from now.
func checkExpiry(what string, created, expires, now time.Time, max time.Duration) error {
	switch {
	case expires.IsZero():
		return fmt.Errorf("%s: no expiry: %w", what, ErrInvalid)
	case !created.IsZero() && expires.Sub(created) < MinTTL:
		return fmt.Errorf("%s: expires %s is %s after its creation %s, under the minimum TTL %s: %w",
			what, expires.Format(time.RFC3339Nano), expires.Sub(created), created.Format(time.RFC3339), MinTTL, ErrInvalid)
	case !created.IsZero() && expires.Sub(created) > max:
		return fmt.Errorf("%s: expires %s is %s after its creation %s, over the maximum TTL %s: %w",
			what, expires.Format(time.RFC3339), expires.Sub(created), created.Format(time.RFC3339), max, ErrInvalid)
	case expires.Sub(now) > max+maxClockSkew:
		return fmt.Errorf("%s: expires %s is %s from now, over the maximum TTL %s: %w",
			what, expires.Format(time.RFC3339), expires.Sub(now).Round(time.Second), max, ErrInvalid)
	}
	return nil
}

// boundedOverride is o as it may be put in force: a job override without an
// expiry (kubectl's, or one saved before TTLs were bounded) lasts
// Options.MaxOverrideTTL from its creation; an expiry out of bounds is an error.
func (d *Dispatcher) boundedOverride(o table.Override, now time.Time) (table.Override, error) {
	what := fmt.Sprintf("job override of %q", o.Job)
	max := d.opts.MaxOverrideTTL
	if o.Expires.IsZero() && !o.CreatedAt.IsZero() {
		o.Expires = o.CreatedAt.Add(max)
	}
	return o, checkExpiry(what, o.CreatedAt, o.Expires, now, max)
}

// checkDrain refuses a drain or cap read from the state whose
// expiry is out of bounds.
func (d *Dispatcher) checkDrain(o table.Drain, now time.Time) error {
	return checkExpiry(fmt.Sprintf("drain or cap of %s", o.Cluster), o.CreatedAt, o.Expires, now, d.opts.MaxDrainTTL)
}

// noteRefused keeps the overrides of one kind (a key prefix) that the state
// holds but were refused, logging each once while it stays refused; Status
// lists them. Callers hold mu.
func (d *Dispatcher) noteRefused(prefix string, refused map[string]error) {
	for key := range d.refused {
		if _, still := refused[key]; strings.HasPrefix(key, prefix) && !still {
			delete(d.refused, key)
		}
	}
	for key, err := range refused {
		if d.refused[key] != err.Error() {
			d.log.Error(err, "Refused an override of the state: it is not applied", "key", key)
			d.refused[key] = err.Error()
		}
	}
}
