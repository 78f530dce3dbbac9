package kubestate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// hashLen is how many hex digits of the name's sha256 a sanitized object
// name ends with.
const hashLen = 10

// ObjectName is the name of the object that holds a job's (or a cluster's)
// state: the name itself when it is a valid object name (a lowercase DNS
// subdomain of at most 253 characters), else a sanitized prefix of it, "-"
// and the first 10 hex digits of its sha256, so distinct names give
// distinct objects and the same name always the same object.
func ObjectName(job string) string {
	if len(validation.IsDNS1123Subdomain(job)) == 0 {
		return job
	}
	sum := sha256.Sum256([]byte(job))
	suffix := hex.EncodeToString(sum[:])[:hashLen]
	prefix := sanitize(job, validation.DNS1123SubdomainMaxLength-hashLen-1)
	if prefix == "" {
		return suffix
	}
	return prefix + "-" + suffix
}

// sanitize lowercases s, turns every run of characters other than [a-z0-9]
// into one "-", trims "-" from both ends and keeps at most max bytes.
func sanitize(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			if b.Len() >= max {
				break
			}
			continue
		}
		dash = true
	}
	return strings.TrimRight(b.String()[:min(b.Len(), max)], "-")
}

// shardName is the name of table shard i.
func shardName(i int) string { return fmt.Sprintf("table-%02d", i) }
