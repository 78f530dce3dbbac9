package gitclone

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prowjob-dispatcher/prowjob-dispatcher/dispatch/internal/gittest"
)

const (
	jobsDir = "ci-operator/jobs"
	cfgFile = "core-services/sanitize-prow-jobs/_config.yaml"
)

// TestShallow: the store holds one commit and only the blobs of the paths
// checked out; each tree holds only the paths; a new commit is fetched and
// checked out beside the old tree; a revision lacking a path is refused
// and leaves no tree. git has no templates, as in the image (git init then
// makes no info dir).
func TestShallow(t *testing.T) {
	srv := gittest.NewServer(t, "openshift", "release")
	t.Setenv("GIT_TEMPLATE_DIR", t.TempDir())
	files := map[string]string{cfgFile: "default: build01\n", "core-services/other.yaml": "x\n", "README.md": "release\n"}
	for i := range 20 {
		files[fmt.Sprintf("%s/org/repo%d/presubmits.yaml", jobsDir, i)] = fmt.Sprintf("job %d\n", i)
		files[fmt.Sprintf("ci-operator/config/org/repo%d/config.yaml", i)] = fmt.Sprintf("config %d\n", i)
	}
	srv.Commit(t, files)
	srv.Commit(t, map[string]string{"ci-operator/config/org/repo1/config.yaml": "history\n"})
	first := srv.Commit(t, map[string]string{jobsDir + "/org/repo0/presubmits.yaml": "v1\n"})

	dir := t.TempDir()
	s, err := NewShallow(ShallowOptions{URL: srv.URL, Branch: "master", Paths: []string{jobsDir, cfgFile}, Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	rev, err := s.Fetch(ctx)
	if err != nil || rev != first {
		t.Fatalf("Fetch = %q, %v; want %s", rev, err, first)
	}
	tree1 := filepath.Join(dir, "tree1")
	if err := s.Checkout(ctx, rev, tree1); err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := filepath.WalkDir(tree1, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(tree1, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 21 || !strings.Contains(strings.Join(got, " "), cfgFile) {
		t.Errorf("tree holds %d files %v, want the 20 job files and %s only", len(got), got, cfgFile)
	}
	if b, _ := os.ReadFile(filepath.Join(tree1, jobsDir, "org/repo0/presubmits.yaml")); string(b) != "v1\n" {
		t.Errorf("job file %q, want v1", b)
	}
	if out := gittest.Run(t, s.store, "rev-list", "--count", "master"); strings.TrimSpace(out) != "1" {
		t.Errorf("the store holds %s commits, want 1 (shallow)", strings.TrimSpace(out))
	}
	// Objects the store lacks: the blobs outside the paths (22), never fetched.
	missing := 0
	for _, l := range strings.Split(gittest.Run(t, s.store, "rev-list", "--objects", "--missing=print", "master"), "\n") {
		if strings.HasPrefix(l, "?") {
			missing++
		}
	}
	if missing != 22 {
		t.Errorf("the store lacks %d objects, want the 22 blobs outside the paths", missing)
	}

	second := srv.Commit(t, map[string]string{jobsDir + "/org/repo0/presubmits.yaml": "v2\n"})
	if rev, err = s.Fetch(ctx); err != nil || rev != second {
		t.Fatalf("Fetch = %q, %v; want %s", rev, err, second)
	}
	tree2 := filepath.Join(dir, "tree2")
	if err := s.Checkout(ctx, rev, tree2); err != nil {
		t.Fatal(err)
	}
	for tree, want := range map[string]string{tree1: "v1\n", tree2: "v2\n"} {
		if b, _ := os.ReadFile(filepath.Join(tree, jobsDir, "org/repo0/presubmits.yaml")); string(b) != want {
			t.Errorf("%s: job file %q, want %q", filepath.Base(tree), b, want)
		}
	}

	gone := srv.Commit(t, map[string]string{cfgFile: ""})
	if rev, err = s.Fetch(ctx); err != nil || rev != gone {
		t.Fatalf("Fetch = %q, %v; want %s", rev, err, gone)
	}
	tree3 := filepath.Join(dir, "tree3")
	if err := s.Checkout(ctx, rev, tree3); err == nil || !strings.Contains(err.Error(), cfgFile) {
		t.Errorf("Checkout of a revision without %s = %v, want an error naming it", cfgFile, err)
	}
	if _, err := os.Stat(tree3); !os.IsNotExist(err) {
		t.Errorf("a refused tree is left behind: %v", err)
	}

	srv.SetDown(true)
	if _, err := s.Fetch(ctx); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("Fetch from a server that is down = %v, want an error with its 503", err)
	}
}

// TestShallowAuth: a token file is sent as basic auth and re-read on each
// fetch; a wrong, missing or absent token is an error naming the cause,
// which never holds the token.
func TestShallowAuth(t *testing.T) {
	srv := gittest.NewServer(t, "openshift", "release")
	srv.Commit(t, map[string]string{jobsDir + "/a.yaml": "a\n"})
	srv.RequireBasicAuth("bot", "s3cret-token")
	tokenDir := t.TempDir()
	write := func(name, token string) string {
		p := filepath.Join(tokenDir, name)
		if err := os.WriteFile(p, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "s3cret-token\n")
	wrong := write("wrong", "not-the-token")
	for _, tc := range []struct {
		name, user, tokenPath string
		want                  string // "" for a fetch that works
	}{
		{name: "right token", user: "bot", tokenPath: good},
		{name: "wrong token", user: "bot", tokenPath: wrong, want: "refused the credentials (username \"bot\", token from " + wrong},
		{name: "wrong username", user: "someone", tokenPath: good, want: "refused the credentials (username \"someone\""},
		{name: "default username", tokenPath: good, want: "refused the credentials (username \"" + DefaultUsername + "\""},
		{name: "missing token file", user: "bot", tokenPath: filepath.Join(tokenDir, "absent"), want: "reading the Git token: open " + filepath.Join(tokenDir, "absent")},
		{name: "empty token file", user: "bot", tokenPath: write("empty", "\n"), want: "is empty"},
		{name: "no token", want: "asks for credentials and none is configured"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewShallow(ShallowOptions{URL: srv.URL, Branch: "master", Paths: []string{jobsDir}, Dir: t.TempDir(),
				Username: tc.user, TokenPath: tc.tokenPath})
			if err != nil {
				t.Fatal(err)
			}
			rev, err := s.Fetch(context.Background())
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				if err := s.Checkout(context.Background(), rev, filepath.Join(t.TempDir(), "tree")); err != nil {
					t.Fatalf("Checkout (fetches the blobs, with the token too): %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Fetch = %v, want an error with %q", err, tc.want)
			}
			t.Logf("Fetch: %v", err)
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}

	// A rotated token is read at the next fetch.
	s, err := NewShallow(ShallowOptions{URL: srv.URL, Branch: "master", Paths: []string{jobsDir}, Dir: t.TempDir(), Username: "bot", TokenPath: good})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv.RequireBasicAuth("bot", "rotated")
	if _, err := s.Fetch(context.Background()); err == nil {
		t.Fatal("Fetch with the old token after the rotation: no error")
	}
	write("good", "rotated\n")
	if _, err := s.Fetch(context.Background()); err != nil {
		t.Fatalf("Fetch after the token file was rotated: %v", err)
	}
}

func TestNewShallowRefuses(t *testing.T) {
	ok := ShallowOptions{URL: "https://github.com/openshift/release", Branch: "master", Paths: []string{jobsDir}, Dir: "/tmp/x"}
	for _, tc := range []struct {
		name string
		edit func(*ShallowOptions)
		want string
	}{
		{"credentials in the URL", func(o *ShallowOptions) { o.URL = "https://bot:tok@github.com/openshift/release" }, "give them as a token file"},
		{"ssh URL", func(o *ShallowOptions) { o.URL = "git@github.com:openshift/release" }, "repository URL"},
		{"ssh scheme", func(o *ShallowOptions) { o.URL = "ssh://git@github.com/openshift/release" }, "want https://"},
		{"option as branch", func(o *ShallowOptions) { o.Branch = "--upload-pack=x" }, "want a branch name"},
		{"path outside", func(o *ShallowOptions) { o.Paths = []string{"../x"} }, "inside the repository"},
		{"root path", func(o *ShallowOptions) { o.Paths = []string{"."} }, "inside the repository"},
		{"no dir", func(o *ShallowOptions) { o.Dir = "" }, "no dir"},
	} {
		o := ok
		tc.edit(&o)
		if _, err := NewShallow(o); err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "tok@") {
			t.Errorf("%s: NewShallow = %v, want an error with %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewShallow(ok); err != nil {
		t.Errorf("NewShallow(%+v) = %v", ok, err)
	}
}
