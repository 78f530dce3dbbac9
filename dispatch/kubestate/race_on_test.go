//go:build race

package kubestate

import "time"

// followBound is how fast a replica must follow a change in these tests:
// under the race detector, which slows this package 2-10x, 5 s (CI once
// took 2.7 s at load 13). The e2e suite, built without it, holds the
// product's 2 s.
const followBound = 5 * time.Second
