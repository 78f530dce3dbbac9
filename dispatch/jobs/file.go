package jobs

import (
	"fmt"
	"path"
	"slices"
)

// ParseFile reads data, the content of the file relPath of the job config
// dir dir, as Load reads a file of the tree: gzipped content is unzipped,
// the jobs are the ones Load would give, sorted as Load sorts them, with
// File set to relPath, and the errors are Load's (a job name defined twice
// in the file, presets sharing a label: value pair, bad YAML), naming the
// file dir/relPath. dir only names the file; nothing is read from disk. The
// name is not checked: Load would read only .yaml and .yml files.
func ParseFile(dir, relPath string, data []byte, labels Labels) ([]Job, error) {
	if labels == (Labels{}) {
		labels = DefaultLabels()
	}
	f := &jobFile{path: path.Join(dir, relPath)}
	data, err := gunzipMaybe(data)
	if err != nil {
		return nil, fmt.Errorf("job config %s: error reading %s: %w", dir, f.path, err)
	}
	newFileReader(dir, labels).decode(f, data, relPath)
	if f.err == nil && len(f.presets) > 0 {
		f.err = checkPresets(f.presets)
	}
	if f.err != nil {
		return nil, fmt.Errorf("job config %s: %w", dir, f.err)
	}
	sortJobs(f.jobs)
	if err := duplicates(dir, f.jobs); err != nil {
		return nil, err
	}
	return f.jobs, nil
}

// Merge joins the jobs of job files, as ParseFile or Load return them, as
// Load joins the files of the tree: sorted by name, then file and type; a
// job name defined more than once is an error naming both files, all such
// errors together, each naming the job config dir. The sets are not changed.
func Merge(dir string, sets ...[]Job) ([]Job, error) {
	all := slices.Concat(sets...)
	sortJobs(all)
	if err := duplicates(dir, all); err != nil {
		return nil, err
	}
	return all, nil
}
