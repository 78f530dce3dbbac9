package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The headers of a forwarded request besides ForwardedHeader: when the
// follower signed it (Unix seconds), a random nonce that makes each signed
// request unique, and the signature ("sha256=" and the hex HMAC-SHA256
// that ReplicaAuth computes).
const (
	ForwardedAtHeader      = "X-Prowjob-Dispatcher-Forwarded-At"
	ForwardNonceHeader     = "X-Prowjob-Dispatcher-Forward-Nonce"
	ForwardSignatureHeader = "X-Prowjob-Dispatcher-Forward-Signature"
	forwardSignaturePrefix = "sha256="
)

// maxSeenNonces bounds the nonces a replica remembers; past it, forwarded
// requests are refused until the oldest expire (only a replica secret
// holder can make new ones, at the rate of writes).
const maxSeenNonces = 100_000

// DefaultForwardValidity is how long a forwarded request's signature holds.
const DefaultForwardValidity = 30 * time.Second

// minReplicaSecretBytes is the shortest replica secret, and
// replicaSecretExample a command that makes one.
const (
	minReplicaSecretBytes = 32
	replicaSecretExample  = "openssl rand -hex 32"
)

// ReplicaAuth authenticates the requests replicas forward to the leader, so
// that no header a client sets can change where a write is served. A
// follower signs each request it forwards with an HMAC-SHA256, keyed by a
// secret every replica shares, over the method, the path and query, the
// SHA-256 of the body, its own name and the time; a replica serves a
// forwarded request only when the signature matches, the time is within
// Validity of its own clock, and it has not served the same signed request
// (by its nonce) before: a captured request cannot be replayed. Use
// NewReplicaAuth.
type ReplicaAuth struct {
	key []byte
	// Validity is how far the signing time may be from this replica's
	// clock; DefaultForwardValidity when zero.
	Validity time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time

	refused *prometheus.CounterVec

	mu   sync.Mutex
	seen map[string]time.Time // nonce -> when it may be forgotten
}

// Refusal reasons, the label of prowjob_dispatcher_forwarded_requests_refused_total.
const (
	refusedUnsigned  = "unsigned"
	refusedMalformed = "malformed"
	refusedClock     = "clock"
	refusedSignature = "signature"
	refusedReplay    = "replay"
)

// NewReplicaAuth returns a ReplicaAuth keyed by secret, which must hold at
// least 32 bytes once surrounding white space is trimmed.
func NewReplicaAuth(secret []byte) (*ReplicaAuth, error) {
	key := bytes.TrimSpace(secret)
	if len(key) < minReplicaSecretBytes {
		return nil, fmt.Errorf("replica secret: %d bytes, want at least %d (make one with %s)", len(key), minReplicaSecretBytes, replicaSecretExample)
	}
	ra := &ReplicaAuth{key: key, seen: map[string]time.Time{}}
	ra.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "prowjob_dispatcher_forwarded_requests_refused_total",
		Help: "Requests that said they were forwarded by a replica and were refused, by reason: unsigned, malformed, clock (signed too far from this replica's clock), signature (not signed with the replica secret), replay (served before).",
	}, []string{"reason"})
	for _, r := range []string{refusedUnsigned, refusedMalformed, refusedClock, refusedSignature, refusedReplay} {
		ra.refused.WithLabelValues(r)
	}
	return ra, nil
}

// Register registers the refusal counter with reg.
func (ra *ReplicaAuth) Register(reg prometheus.Registerer) error {
	if err := reg.Register(ra.refused); err != nil {
		return fmt.Errorf("registering the forwarding metrics: %w", err)
	}
	return nil
}

// ReadReplicaAuth is NewReplicaAuth of the secret in the file at path.
func ReadReplicaAuth(path string) (*ReplicaAuth, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("replica secret file: %w", err)
	}
	ra, err := NewReplicaAuth(b)
	if err != nil {
		return nil, fmt.Errorf("replica secret file %s: %w", path, err)
	}
	return ra, nil
}

func (ra *ReplicaAuth) now() time.Time {
	if ra.Now != nil {
		return ra.Now()
	}
	return time.Now()
}

// Sign marks out as forwarded by replica and signs it; body is its body.
func (ra *ReplicaAuth) Sign(out *http.Request, replica string, body []byte) {
	at := strconv.FormatInt(ra.now().Unix(), 10)
	nonce := make([]byte, 16)
	_, _ = rand.Read(nonce) // crypto/rand.Read never fails (Go 1.24)
	n := hex.EncodeToString(nonce)
	out.Header.Set(ForwardedHeader, replica)
	out.Header.Set(ForwardedAtHeader, at)
	out.Header.Set(ForwardNonceHeader, n)
	out.Header.Set(ForwardSignatureHeader, forwardSignaturePrefix+hex.EncodeToString(ra.mac(out.Method, out.URL.RequestURI(), replica, at, n, body)))
}

// errForwardAuth is what every refusal of Verify wraps.
var errForwardAuth = errors.New("forwarded request not authenticated")

// Verify checks the signature of a request that says it was forwarded,
// whose body is body, and returns the replica that forwarded it. A request
// it accepts once is refused after that.
func (ra *ReplicaAuth) Verify(r *http.Request, body []byte) (replica string, err error) {
	replica, reason, err := ra.verify(r, body)
	if err != nil {
		ra.refused.WithLabelValues(reason).Inc()
	}
	return replica, err
}

func (ra *ReplicaAuth) verify(r *http.Request, body []byte) (replica, reason string, err error) {
	replica, at, nonce, sig := r.Header.Get(ForwardedHeader), r.Header.Get(ForwardedAtHeader), r.Header.Get(ForwardNonceHeader), r.Header.Get(ForwardSignatureHeader)
	if replica == "" || at == "" || nonce == "" || sig == "" {
		return "", refusedUnsigned, fmt.Errorf("%w: a forwarded request needs %s, %s, %s and %s, set by a replica holding the replica secret",
			errForwardAuth, ForwardedHeader, ForwardedAtHeader, ForwardNonceHeader, ForwardSignatureHeader)
	}
	secs, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return "", refusedMalformed, fmt.Errorf("%w: %s %q is not Unix seconds", errForwardAuth, ForwardedAtHeader, at)
	}
	validity := ra.Validity
	if validity <= 0 {
		validity = DefaultForwardValidity
	}
	now := ra.now()
	signed := time.Unix(secs, 0)
	if d := now.Sub(signed); d > validity || d < -validity {
		return "", refusedClock, fmt.Errorf("%w: signed by %q at %s, more than %s from this replica's clock", errForwardAuth, replica, signed.UTC().Format(time.RFC3339), validity)
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, forwardSignaturePrefix))
	if err != nil || !strings.HasPrefix(sig, forwardSignaturePrefix) {
		return "", refusedMalformed, fmt.Errorf("%w: %s is not %s<hex>", errForwardAuth, ForwardSignatureHeader, forwardSignaturePrefix)
	}
	if !hmac.Equal(got, ra.mac(r.Method, r.URL.RequestURI(), replica, at, nonce, body)) {
		return "", refusedSignature, fmt.Errorf("%w: the signature of %q does not match (another replica secret, or the request was changed)", errForwardAuth, replica)
	}
	if err := ra.remember(nonce, signed.Add(validity+time.Second), now); err != nil {
		return "", refusedReplay, fmt.Errorf("%w: %s of %q: %w", errForwardAuth, ForwardNonceHeader, replica, err)
	}
	return replica, "", nil
}

// remember records nonce until forget (past it, the signing time is out of
// Validity anyway), or says it was seen.
func (ra *ReplicaAuth) remember(nonce string, forget, now time.Time) error {
	ra.mu.Lock()
	defer ra.mu.Unlock()
	if until, ok := ra.seen[nonce]; ok && now.Before(until) {
		return errors.New("this signed request was served before: a replay")
	}
	if len(ra.seen) >= maxSeenNonces {
		for n, until := range ra.seen {
			if !now.Before(until) {
				delete(ra.seen, n)
			}
		}
		if len(ra.seen) >= maxSeenNonces {
			return fmt.Errorf("%d forwarded requests are remembered, the most there may be: refusing more until they expire", len(ra.seen))
		}
	}
	ra.seen[nonce] = forget
	return nil
}

// mac is the HMAC-SHA256 of a forwarded request.
func (ra *ReplicaAuth) mac(method, uri, replica, at, nonce string, body []byte) []byte {
	digest := sha256.Sum256(body)
	m := hmac.New(sha256.New, ra.key)
	for _, part := range []string{method, uri, replica, at, nonce, hex.EncodeToString(digest[:])} {
		m.Write([]byte(part))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}
