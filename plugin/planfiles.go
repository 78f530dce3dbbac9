package plugin

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"sigs.k8s.io/prow/pkg/github"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/webhook/api"
)

// DefaultJobConfigDir is the Prow job config dir of the release repository.
const DefaultJobConfigDir = "ci-operator/jobs"

// Bounds of the job config files a plan request carries: at most
// maxPlanJobFiles files (each one read from GitHub), and a JSON body of at
// most planRequestBudget bytes, which leaves room under the dispatcher's
// api.MaxPlanRequestBytes for the framing of the request.
const (
	maxPlanJobFiles   = 100
	planRequestBudget = api.MaxPlanRequestBytes - 64<<10
)

// jobFileChange is a job config file a PR changes: its path relative to the
// job config dir, and whether the PR's head lacks it.
type jobFileChange struct {
	rel     string
	deleted bool
}

// jobFileRel returns the path of file relative to the job config dir dir,
// when it is a file the job config loader reads there (a .yaml or .yml
// file, no folder or file named "..*").
func jobFileRel(dir, file string) (string, bool) {
	rel, ok := strings.CutPrefix(file, dir+"/")
	if !ok || rel == "" || path.Clean(rel) != rel {
		return "", false
	}
	if ext := path.Ext(rel); ext != ".yaml" && ext != ".yml" {
		return "", false
	}
	for _, part := range strings.Split(rel, "/") {
		if strings.HasPrefix(part, "..") {
			return "", false
		}
	}
	return rel, true
}

// jobFileChanges returns the job config files under dir that the changes
// of a PR touch, in the PR's order, one group per change: a renamed file is
// its new path and its old one deleted, and goes into a plan whole or not
// at all. A file is listed once; a path the head has is never deleted.
func jobFileChanges(dir string, changes []github.PullRequestChange) [][]jobFileChange {
	present := map[string]bool{}
	for _, c := range changes {
		if rel, ok := jobFileRel(dir, c.Filename); ok && c.Status != github.PullRequestFileRemoved {
			present[rel] = true
		}
	}
	seen := map[string]bool{}
	var groups [][]jobFileChange
	for _, c := range changes {
		var group []jobFileChange
		if rel, ok := jobFileRel(dir, c.Filename); ok && !seen[rel] {
			seen[rel] = true
			group = append(group, jobFileChange{rel: rel, deleted: !present[rel]})
		}
		if rel, ok := jobFileRel(dir, c.PreviousFilename); ok && !seen[rel] && !present[rel] {
			seen[rel] = true
			group = append(group, jobFileChange{rel: rel, deleted: true})
		}
		if len(group) > 0 {
			groups = append(groups, group)
		}
	}
	return groups
}

// addJobFiles reads the job config files of groups at sha into req, group
// by group, until a group would take req over maxPlanJobFiles files or
// planRequestBudget bytes; it returns how many files it added and the
// repository paths of those it left out. A file the head lacks is sent as
// deleted.
func (p *Plugin) addJobFiles(org, repo, sha string, req *api.PlanRequest, groups [][]jobFileChange) (int, []string, error) {
	dir := p.opts.Config.JobConfigDir
	size, err := jsonLen(req)
	if err != nil {
		return 0, nil, err
	}
	var leftOut []string
	files := 0
	for i, group := range groups {
		contents := make([]*string, len(group))
		grow := 0
		for j, f := range group {
			if files+j >= maxPlanJobFiles {
				grow = -1
				break
			}
			if !f.deleted {
				data, err := p.opts.GitHub.GetFile(org, repo, path.Join(dir, f.rel), sha)
				var notFound *github.FileNotFound
				switch {
				case errors.As(err, &notFound):
				case err != nil:
					return 0, nil, fmt.Errorf("reading %s at %s: %w", path.Join(dir, f.rel), sha, err)
				default:
					s := string(data)
					contents[j] = &s
				}
			}
			n, err := jsonLen(f.rel)
			if err != nil {
				return 0, nil, err
			}
			m, err := jsonLen(contents[j])
			if err != nil {
				return 0, nil, err
			}
			grow += n + 1 + m + 1 // "path":content,
		}
		if grow < 0 || size+grow > planRequestBudget {
			for _, rest := range groups[i:] {
				for _, f := range rest {
					leftOut = append(leftOut, path.Join(dir, f.rel))
				}
			}
			break
		}
		if req.JobConfigFiles == nil {
			req.JobConfigFiles, req.JobConfigDir = map[string]*string{}, dir
		}
		for j, f := range group {
			req.JobConfigFiles[f.rel] = contents[j]
		}
		size += grow
		files += len(group)
	}
	return files, leftOut, nil
}

// jsonLen is the length of v in JSON.
func jsonLen(v any) (int, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return 0, fmt.Errorf("encoding the plan request: %w", err)
	}
	return len(data), nil
}
