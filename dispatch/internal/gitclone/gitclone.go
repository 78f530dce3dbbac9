// Package gitclone checks out one branch of a repository with prow's git
// client (sigs.k8s.io/prow/pkg/git/v2), sparsely: what the Git backup and
// the job config read from Git share.
package gitclone

import (
	"fmt"

	git "sigs.k8s.io/prow/pkg/git/v2"
)

// Checkout clones org/repo through factory (a primary mirror in the
// factory's cache, fetched incrementally, and a local secondary clone whose
// working tree holds only the sparse dirs; empty: the root's files) and
// checks out the tip of branch, fetched by itself so that a failed
// refresh of the cached mirror is an error rather than an old tree. The
// caller cleans the returned clone.
func Checkout(factory git.ClientFactory, org, repo, branch string, sparse []string) (git.RepoClient, error) {
	if sparse == nil {
		sparse = []string{}
	}
	rc, err := factory.ClientForWithRepoOpts(org, repo, git.RepoOpts{SparseCheckoutDirs: sparse})
	if err != nil {
		return nil, fmt.Errorf("cloning %s/%s: %w", org, repo, err)
	}
	if err := rc.FetchRef("refs/heads/" + branch); err != nil {
		_ = rc.Clean()
		return nil, fmt.Errorf("fetching %s of %s/%s: %w", branch, org, repo, err)
	}
	if err := rc.Checkout("FETCH_HEAD"); err != nil {
		_ = rc.Clean()
		return nil, fmt.Errorf("checking out %s of %s/%s: %w", branch, org, repo, err)
	}
	return rc, nil
}
