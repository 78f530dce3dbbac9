//go:build !race

package kubestate

import "time"

// followBound is how fast a replica must follow a change in these tests:
// the product's 2 s.
const followBound = 2 * time.Second
