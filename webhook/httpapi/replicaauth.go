package httpapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// The headers of a forwarded request besides ForwardedHeader: when the
// follower signed it (Unix seconds), and the signature ("sha256=" and the
// hex HMAC-SHA256 that ReplicaAuth computes).
const (
	ForwardedAtHeader      = "X-Prowjob-Dispatcher-Forwarded-At"
	ForwardSignatureHeader = "X-Prowjob-Dispatcher-Forward-Signature"
	forwardSignaturePrefix = "sha256="
)

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
// forwarded request only when the signature matches and the time is within
// Validity of its own clock. Use NewReplicaAuth.
type ReplicaAuth struct {
	key []byte
	// Validity is how far the signing time may be from this replica's
	// clock; DefaultForwardValidity when zero.
	Validity time.Duration
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// NewReplicaAuth returns a ReplicaAuth keyed by secret, which must hold at
// least 32 bytes once surrounding white space is trimmed.
func NewReplicaAuth(secret []byte) (*ReplicaAuth, error) {
	key := bytes.TrimSpace(secret)
	if len(key) < minReplicaSecretBytes {
		return nil, fmt.Errorf("replica secret: %d bytes, want at least %d (make one with %s)", len(key), minReplicaSecretBytes, replicaSecretExample)
	}
	return &ReplicaAuth{key: key}, nil
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
	out.Header.Set(ForwardedHeader, replica)
	out.Header.Set(ForwardedAtHeader, at)
	out.Header.Set(ForwardSignatureHeader, forwardSignaturePrefix+hex.EncodeToString(ra.mac(out.Method, out.URL.RequestURI(), replica, at, body)))
}

// errForwardAuth is what every refusal of Verify wraps.
var errForwardAuth = errors.New("forwarded request not authenticated")

// Verify checks the signature of a request that says it was forwarded,
// whose body is body, and returns the replica that forwarded it.
func (ra *ReplicaAuth) Verify(r *http.Request, body []byte) (replica string, err error) {
	replica, at, sig := r.Header.Get(ForwardedHeader), r.Header.Get(ForwardedAtHeader), r.Header.Get(ForwardSignatureHeader)
	if replica == "" || at == "" || sig == "" {
		return "", fmt.Errorf("%w: a forwarded request needs %s, %s and %s, set by a replica holding the replica secret",
			errForwardAuth, ForwardedHeader, ForwardedAtHeader, ForwardSignatureHeader)
	}
	secs, err := strconv.ParseInt(at, 10, 64)
	if err != nil {
		return "", fmt.Errorf("%w: %s %q is not Unix seconds", errForwardAuth, ForwardedAtHeader, at)
	}
	validity := ra.Validity
	if validity <= 0 {
		validity = DefaultForwardValidity
	}
	signed := time.Unix(secs, 0)
	if d := ra.now().Sub(signed); d > validity || d < -validity {
		return "", fmt.Errorf("%w: signed by %q at %s, more than %s from this replica's clock", errForwardAuth, replica, signed.UTC().Format(time.RFC3339), validity)
	}
	got, err := hex.DecodeString(strings.TrimPrefix(sig, forwardSignaturePrefix))
	if err != nil || !strings.HasPrefix(sig, forwardSignaturePrefix) {
		return "", fmt.Errorf("%w: %s is not %s<hex>", errForwardAuth, ForwardSignatureHeader, forwardSignaturePrefix)
	}
	if !hmac.Equal(got, ra.mac(r.Method, r.URL.RequestURI(), replica, at, body)) {
		return "", fmt.Errorf("%w: the signature of %q does not match (another replica secret, or the request was changed)", errForwardAuth, replica)
	}
	return replica, nil
}

// mac is the HMAC-SHA256 of a forwarded request.
func (ra *ReplicaAuth) mac(method, uri, replica, at string, body []byte) []byte {
	digest := sha256.Sum256(body)
	m := hmac.New(sha256.New, ra.key)
	for _, part := range []string{method, uri, replica, at, hex.EncodeToString(digest[:])} {
		m.Write([]byte(part))
		m.Write([]byte{'\n'})
	}
	return m.Sum(nil)
}
