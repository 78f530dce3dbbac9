// Command gitbench measures the Git job config's checkout: bytes on disk
// and the time of the first fetch, a fetch with nothing new and a fetch of
// a new commit, against a bare repository served by git http-backend.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/gitjobs"
)

func main() {
	root := flag.String("root", "/tmp/gitbench/repo", "dir holding git/openshift/release (bare) and seed (a clone to push from), as gen.sh makes them")
	out := flag.String("dir", "/tmp/gitbench/checkout", "checkout dir")
	flag.Parse()
	gitPath, _ := exec.LookPath("git")
	backend := &cgi.Handler{Path: gitPath, Args: []string{"http-backend"},
		Env: []string{"GIT_PROJECT_ROOT=" + filepath.Join(*root, "git"), "GIT_HTTP_EXPORT_ALL=1"}}
	var sent atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		backend.ServeHTTP(countingWriter{w, &sent}, r)
	}))
	defer srv.Close()
	_ = os.RemoveAll(*out)
	src, err := gitjobs.New(gitjobs.Options{URL: srv.URL + "/openshift/release", Branch: "master",
		Paths: []string{"ci-operator/jobs", "core-services/sanitize-prow-jobs/_config.yaml"}, Dir: *out, Interval: time.Hour, Logger: logr.Discard()})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()
	step := func(name string) {
		start := time.Now()
		changed, err := src.Sync(ctx)
		if err != nil {
			log.Fatal(err)
		}
		link, _ := os.Readlink(filepath.Join(*out, gitjobs.CurrentLink))
		du, _ := exec.Command("du", "-sb", "--", *out, link).CombinedOutput()
		fmt.Printf("%-10s changed=%v took=%s served=%d bytes\n%s", name, changed, time.Since(start).Round(time.Millisecond), sent.Swap(0), du)
	}
	step("first")
	step("unchanged")
	seed := filepath.Join(*root, "seed")
	job := filepath.Join(seed, "ci-operator/jobs/org1/repo1/job-1-presubmits.yaml")
	f, err := os.OpenFile(job, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		log.Fatal(err)
	}
	_, _ = fmt.Fprintf(f, "bench: %d\n", time.Now().UnixNano())
	_ = f.Close()
	for _, args := range [][]string{
		{"-C", seed, "commit", "-q", "-am", "bench"},
		{"-C", seed, "push", "-q", filepath.Join(*root, "git", "openshift", "release"), "HEAD:master"},
	} {
		if b, err := exec.Command("git", append([]string{"-c", "user.name=b", "-c", "user.email=b@x"}, args...)...).CombinedOutput(); err != nil {
			log.Fatalf("%v: %s", err, b)
		}
	}
	step("new-commit")
	src.Close()
}

// countingWriter counts the bytes the server sends.
type countingWriter struct {
	http.ResponseWriter
	n *atomic.Int64
}

func (w countingWriter) Write(b []byte) (int, error) {
	w.n.Add(int64(len(b)))
	return w.ResponseWriter.Write(b)
}
