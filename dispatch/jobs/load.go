package jobs

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	gitignore "github.com/denormal/go-gitignore"
	utilerrors "k8s.io/apimachinery/pkg/util/errors"
	prowconfig "sigs.k8s.io/prow/pkg/config"
	"sigs.k8s.io/yaml"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/jobs/internal/fastyaml"
)

// Load reads the Prow job config tree under dir (presubmits, postsubmits and
// periodics in YAML files, in nested folders, as openshift/release
// ci-operator/jobs has) and returns its jobs sorted by name, then file and
// type. File is the job's file relative to dir, with forward slashes (its
// base name when dir is a single file); an empty agent becomes "kubernetes";
// the requirements come from labels (DefaultLabels when labels is zero).
//
// Load selects files as prow's config.ReadJobConfig does (.yaml and .yml
// files; .prowignore; folders and files named "..*" skipped; symlinks to
// files read, to folders not followed; gzipped files; unique base names) and
// reads them as it does, with its errors, but in parallel and, for a plain
// file, only the name, agent, cluster and labels of each job: a field
// dispatch does not read is not checked. A job name defined twice is an
// error naming both files; all such errors are returned together.
func Load(dir string, labels Labels) ([]Job, error) {
	if labels == (Labels{}) {
		labels = DefaultLabels()
	}
	all, err := readJobConfig(dir, labels)
	if err != nil {
		return nil, fmt.Errorf("job config %s: %w", dir, err)
	}
	sortJobs(all)
	if err := duplicates(dir, all); err != nil {
		return nil, err
	}
	return all, nil
}

// sortJobs sorts by name, then file and type, so duplicates sit side by side
// in a stable order.
func sortJobs(all []Job) {
	slices.SortFunc(all, func(a, b Job) int {
		if c := strings.Compare(a.Name, b.Name); c != 0 {
			return c
		}
		if c := strings.Compare(a.File, b.File); c != 0 {
			return c
		}
		return cmp.Compare(a.Type, b.Type)
	})
}

// duplicates reports every job name defined more than once in the sorted jobs.
func duplicates(dir string, sorted []Job) error {
	var errs []error
	for i := 1; i < len(sorted); i++ {
		prev, cur := sorted[i-1], sorted[i]
		if prev.Name == cur.Name {
			errs = append(errs, fmt.Errorf("job config %s: job %q defined twice: %s %s and %s %s",
				dir, cur.Name, prev.Type, prev.File, cur.Type, cur.File))
		}
	}
	return errors.Join(errs...)
}

// relativeFile returns the job's file relative to the job config dir (its
// base name when dir is the file itself).
func relativeFile(dir, source string) string {
	rel, err := filepath.Rel(dir, source)
	if err != nil || rel == "." {
		return filepath.Base(source)
	}
	return filepath.ToSlash(rel)
}

// jobFile is one file ReadJobConfig would read, in walk order, and what
// reading it gave.
type jobFile struct {
	path string
	// err is set for a file ReadJobConfig refuses (a repeated base name)
	// before reading it, or when reading or decoding it fails.
	err     error
	jobs    []Job
	presets []prowconfig.Preset
}

// readJobConfig returns the jobs of the job config at path, unsorted, with
// the errors prow's ReadJobConfig gives for it.
func readJobConfig(path string, labels Labels) ([]Job, error) {
	stat, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !stat.IsDir() {
		// A single file is read whatever its name.
		f := &jobFile{path: path}
		newFileReader(path, labels).read(f)
		return f.jobs, f.err
	}
	files, err := selectFiles(path)
	if err != nil {
		return nil, err
	}
	readFiles(path, labels, files)
	return mergeFiles(files)
}

// selectFiles walks the job config dir as ReadJobConfig does and returns, in
// walk order, the files it would read.
func selectFiles(dir string) ([]*jobFile, error) {
	prowIgnore, err := gitignore.NewRepositoryWithFile(dir, prowconfig.ProwIgnoreFileName)
	if err != nil {
		return nil, fmt.Errorf("failed to create `%s` parser: %w", prowconfig.ProwIgnoreFileName, err)
	}
	var candidates []string
	sawIgnoreFile := false
	// Like filepath.Walk, WalkDir lstats the root and does not follow
	// symlinks; it calls back in the same order with the same names.
	_ = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			// A bad file should not stop the walk (prow logs it and goes
			// on). filepath.Walk enters no folder it fails to list.
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.Name() == prowconfig.ProwIgnoreFileName {
			sawIgnoreFile = true
		}
		if strings.HasPrefix(d.Name(), "..") {
			// Kubernetes volumes hold such files and folders.
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
			return nil
		}
		if d.IsDir() {
			return nil
		}
		candidates = append(candidates, path)
		return nil
	})
	// Only .prowignore files in the folders walked can ignore a file, so
	// the ignore rules are matched only when there is one.
	uniqueBasenames := make(map[string]bool, len(candidates))
	files := make([]*jobFile, 0, len(candidates))
	for _, path := range candidates {
		if sawIgnoreFile {
			if m := prowIgnore.Match(path); m != nil && m.Ignore() {
				continue
			}
		}
		f := &jobFile{path: path}
		// The updateconfig plugin keys files by base name.
		if base := filepath.Base(path); uniqueBasenames[base] {
			f.err = fmt.Errorf("duplicated basename is not allowed: %s", base)
		} else {
			uniqueBasenames[base] = true
		}
		files = append(files, f)
	}
	return files, nil
}

// readFiles reads the files that have no error yet on GOMAXPROCS workers.
func readFiles(dir string, labels Labels, files []*jobFile) {
	todo := make(chan *jobFile)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(files)) {
		wg.Go(func() {
			r := newFileReader(dir, labels)
			for f := range todo {
				r.read(f)
			}
		})
	}
	for _, f := range files {
		if f.err == nil {
			todo <- f
		}
	}
	close(todo)
	wg.Wait()
}

// mergeFiles gathers the jobs of the files and their errors in walk order,
// checking presets across files as prow does when it merges job configs.
func mergeFiles(files []*jobFile) ([]Job, error) {
	var errs []error
	var presets []prowconfig.Preset
	n := 0
	for _, f := range files {
		n += len(f.jobs)
	}
	var all []Job
	if n > 0 {
		all = make([]Job, 0, n)
	}
	for _, f := range files {
		if f.err != nil {
			errs = append(errs, f.err)
			continue
		}
		if len(f.presets) > 0 {
			merged := append(presets[:len(presets):len(presets)], f.presets...)
			if err := checkPresets(merged); err != nil {
				// Prow's merged config starts over after a failed merge.
				errs = append(errs, err)
				presets = nil
				continue
			}
			presets = merged
		}
		all = append(all, f.jobs...)
	}
	if err := utilerrors.NewAggregate(errs); err != nil {
		return nil, err
	}
	return all, nil
}

// checkPresets fails, as prow's mergeJobConfigs does, when two presets share
// a label: value pair.
func checkPresets(presets []prowconfig.Preset) error {
	seen := map[string]bool{}
	for _, preset := range presets {
		for label, val := range preset.Labels {
			pair := label + ":" + val
			if seen[pair] {
				return fmt.Errorf("duplicated preset 'label:value' pair : %s", pair)
			}
			seen[pair] = true
		}
	}
	return nil
}

// fileReader reads job files, one at a time; each worker has its own.
type fileReader struct {
	dir    string
	labels Labels
	buf    []byte
	fast   fastyaml.Parser
	// intern shares the strings that repeat across jobs: agents, clusters,
	// label keys and values.
	intern map[string]string
}

// newFileReader returns a reader of the files of the job config at dir.
func newFileReader(dir string, labels Labels) *fileReader {
	return &fileReader{dir: dir, labels: labels, intern: map[string]string{}}
}

// read reads f's jobs into f, or sets f.err, with the errors of prow's
// yamlToConfig.
func (r *fileReader) read(f *jobFile) {
	data, err := r.readFile(f.path)
	if err != nil {
		f.err = fmt.Errorf("error reading %s: %w", f.path, err)
		return
	}
	r.decode(f, data, relativeFile(r.dir, f.path))
}

// decode reads the jobs of data, the unzipped content of f, into f, with
// file as their File, or sets f.err naming f.path.
func (r *fileReader) decode(f *jobFile, data []byte, file string) {
	if jobs, ok := r.fast.Parse(data); ok {
		if len(jobs) > 0 {
			f.jobs = make([]Job, len(jobs))
			for i := range jobs {
				f.jobs[i] = r.jobOf(&jobs[i], file)
			}
		}
		return
	}
	// What the fast parser does not take, prow's own decoding does.
	var jc prowconfig.JobConfig
	if err := yaml.Unmarshal(data, &jc); err != nil {
		f.err = fmt.Errorf("error unmarshalling %s: %w", f.path, err)
		return
	}
	f.presets = jc.Presets
	eachJob(&jc, func(t Type, base prowconfig.JobBase) {
		f.jobs = append(f.jobs, r.labels.jobOf(t, base, file))
	})
}

// readFile reads path into the reader's buffer, with os.ReadFile's errors,
// and unzips it when gzipped, as prow's ReadFileMaybeGZIP does.
func (r *fileReader) readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := 512
	if info, err := f.Stat(); err == nil && info.Size() > 0 && int64(int(info.Size())) == info.Size() {
		size = int(info.Size()) + 1
	}
	if cap(r.buf) < size {
		r.buf = make([]byte, 0, size)
	}
	data := r.buf[:0]
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err != nil {
			if err == io.EOF {
				break
			}
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
	r.buf = data[:0]
	return gunzipMaybe(data)
}

// gunzipMaybe unzips data when it is gzipped, as prow's ReadFileMaybeGZIP
// does, and returns it as is otherwise.
func gunzipMaybe(data []byte) ([]byte, error) {
	if !bytes.HasPrefix(data, []byte("\x1F\x8B")) {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewBuffer(data))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// sections are the job types of the sections of a job config.
var sections = [...]Type{fastyaml.Presubmits: Presubmit, fastyaml.Postsubmits: Postsubmit, fastyaml.Periodics: Periodic}

// jobOf is the engine's view of a job the fast parser read from file.
func (r *fileReader) jobOf(fj *fastyaml.Job, file string) Job {
	j := Job{Name: string(fj.Name), File: file, Type: sections[fj.Section], Agent: Agent, Cluster: r.str(fj.Cluster)}
	if len(fj.Agent) > 0 {
		j.Agent = r.str(fj.Agent)
	}
	for _, kv := range fj.Labels {
		r.labels.apply(&j.Requirements, r.str(kv[0]), r.str(kv[1]))
	}
	sort.Strings(j.Requirements.Capabilities)
	return j
}

// str returns b as a string, shared with earlier equal ones.
func (r *fileReader) str(b []byte) string {
	if s, ok := r.intern[string(b)]; ok {
		return s
	}
	s := string(b)
	r.intern[s] = s
	return s
}

// eachJob calls f for every job of a decoded job config: presubmits,
// postsubmits, then periodics.
func eachJob(jc *prowconfig.JobConfig, f func(Type, prowconfig.JobBase)) {
	for _, ps := range jc.PresubmitsStatic {
		for _, p := range ps {
			f(Presubmit, p.JobBase)
		}
	}
	for _, ps := range jc.PostsubmitsStatic {
		for _, p := range ps {
			f(Postsubmit, p.JobBase)
		}
	}
	for _, p := range jc.Periodics {
		f(Periodic, p.JobBase)
	}
}

// jobOf is the engine's view of a job of prow's job config, read from file:
// an empty agent is kubernetes, the labels give the requirements.
func (l Labels) jobOf(t Type, base prowconfig.JobBase, file string) Job {
	agent := base.Agent
	if agent == "" {
		agent = Agent
	}
	return Job{Name: base.Name, File: file, Type: t, Agent: agent, Cluster: base.Cluster, Requirements: l.Requirements(base.Labels)}
}
