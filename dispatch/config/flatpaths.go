package config

import (
	"fmt"
	"strings"
)

// FlatPathProblems names the group path regexes that can never match
// because the job config is flat: every file sits at its top level, as in
// a ConfigMap (Prow's config-updater keys files by base name), while the
// regex wants a dir ("^openshift/hive/") and matches no file. files are the
// job files relative to the job config dir. A job config with any
// sub-dir, or a regex that matches a file, gives no problem.
func (d *DispatcherConfig) FlatPathProblems(files []string) []string {
	for _, f := range files {
		if strings.Contains(f, "/") {
			return nil
		}
	}
	var out []string
	for _, cluster := range sortedKeys(d.Groups) {
		g := d.Groups[cluster]
		for i, re := range g.PathREs {
			if re == nil || i >= len(g.Paths) || !strings.Contains(g.Paths[i], "/") {
				continue
			}
			matched := false
			for _, f := range files {
				if MatchPath(re, f) {
					matched = true
					break
				}
			}
			if !matched {
				out = append(out, fmt.Sprintf("%s: %s: path regex %q matches no job file: the job config is flat (every file at its top level, as a ConfigMap keys files by base name), so a regex naming a dir never matches; read the job config from Git (--job-config-git-url) or a checkout",
					dispatcherPrefix(d.File), index(key("groups", cluster)+".paths", i), g.Paths[i]))
			}
		}
	}
	return out
}
