package gitclone

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// Why not prow's client here: sigs.k8s.io/prow/pkg/git/v2 always starts
// from a full `git clone --mirror` (every ref and all history; on GitHub
// that includes refs/pull/*), refreshes it with `git remote update --prune`
// of every ref, and offers no depth or filter; its sparse checkout limits
// only the work tree of a local secondary clone, made afresh (in /var/tmp,
// whatever the cache dir) on every call, even when nothing changed. Its
// executor runs git without an environment of its own, so credentials can
// only go into the remote URL, that is into git's process arguments. A
// Shallow therefore runs these git commands itself: one shallow (depth 1),
// partial (no blobs until checked out) bare store, fetched incrementally,
// and a sparse read-tree per revision that fetches, in one batch, only the
// blobs of the paths read.

// ShallowOptions configure a Shallow.
type ShallowOptions struct {
	// URL is the repository (https:// or http://); it carries no credentials.
	URL string
	// Branch is what is fetched.
	Branch string
	// Paths are the repository paths (dirs or files) a tree holds.
	Paths []string
	// Dir holds the store (Dir/store.git); it persists across restarts.
	Dir string
	// TokenPath, when set, names a file holding a password or token, read
	// at each fetch (so a rotated token is used at once) and sent to the
	// URL's host only, as HTTP basic auth with Username, in an
	// http.extraHeader passed through git's environment: never in a URL or
	// in a process argument, and never logged. Without it, git's own ways
	// apply (a credential helper or ~/.netrc).
	TokenPath, Username string
}

// Shallow keeps a shallow, partial copy of one branch and checks out
// sparse trees of it. Its methods are not safe for concurrent use.
type Shallow struct {
	opts  ShallowOptions
	git   string
	store string
	auth  string // the http.<auth>.extraHeader key's URL: scheme://host/
}

// NewShallow validates the options and finds git; it does not fetch.
func NewShallow(o ShallowOptions) (*Shallow, error) {
	u, err := url.Parse(o.URL)
	switch {
	case err != nil:
		return nil, fmt.Errorf("repository URL %q: %w", o.URL, err)
	case u.Scheme != "https" && u.Scheme != "http" || u.Host == "":
		return nil, fmt.Errorf("repository URL %q: want https://HOST/PATH or http://HOST/PATH", o.URL)
	case u.User != nil:
		return nil, fmt.Errorf("repository URL %s: has credentials; give them as a token file instead", u.Redacted())
	case o.Branch == "" || strings.HasPrefix(o.Branch, "-"):
		return nil, fmt.Errorf("branch %q: want a branch name", o.Branch)
	case len(o.Paths) == 0:
		return nil, errors.New("no repository path to check out")
	case o.Dir == "":
		return nil, errors.New("no dir for the repository")
	}
	for _, p := range o.Paths {
		if c := path.Clean(p); p == "" || path.IsAbs(p) || c == "." || c == ".." || strings.HasPrefix(c, "../") {
			return nil, fmt.Errorf("path %q: want a path inside the repository", p)
		}
	}
	if o.TokenPath != "" && o.Username == "" {
		o.Username = DefaultUsername
	}
	g, err := exec.LookPath("git")
	if err != nil {
		return nil, fmt.Errorf("the job config from Git needs the git binary: %w", err)
	}
	return &Shallow{opts: o, git: g, store: filepath.Join(o.Dir, "store.git"), auth: u.Scheme + "://" + u.Host + "/"}, nil
}

// DefaultUsername goes with a token when no username is given: GitHub
// takes any username with a personal access token and wants this one with
// a GitHub App's installation token.
const DefaultUsername = "x-access-token"

// Fetch brings the branch's tip into the store (creating the store on the
// first call) and returns its commit.
func (s *Shallow) Fetch(ctx context.Context) (string, error) {
	if err := s.init(ctx); err != nil {
		return "", err
	}
	ref := "refs/heads/" + s.opts.Branch
	if _, err := s.run(ctx, s.store, nil, "-c", "gc.autoDetach=false", "fetch", "--quiet", "--no-tags", "--no-recurse-submodules",
		"--depth=1", "--filter=blob:none", "origin", "+"+ref+":"+ref); err != nil {
		return "", fmt.Errorf("fetching %s of %s: %w", s.opts.Branch, s.opts.URL, err)
	}
	out, err := s.run(ctx, s.store, nil, "rev-parse", "--verify", ref+"^{commit}")
	if err != nil {
		return "", fmt.Errorf("%s of %s: %w", s.opts.Branch, s.opts.URL, err)
	}
	return strings.TrimSpace(string(out)), nil
}

// init creates the store once: a bare repository whose origin is a promisor
// remote, so that blobs come only when a tree needs them. It is built in a
// temporary dir and renamed, so a store that exists is complete.
func (s *Shallow) init(ctx context.Context) error {
	if _, err := os.Stat(filepath.Join(s.store, "config")); err == nil {
		// The URL may have changed since the store was made.
		_, err := s.run(ctx, s.store, nil, "config", "remote.origin.url", s.opts.URL)
		return err
	}
	tmp := s.store + ".new"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("git store: %w", err)
	}
	if err := os.MkdirAll(s.opts.Dir, 0o755); err != nil {
		return fmt.Errorf("git store: %w", err)
	}
	for _, args := range [][]string{
		{"init", "--quiet", "--bare", tmp},
		{"-C", tmp, "config", "remote.origin.url", s.opts.URL},
		{"-C", tmp, "config", "remote.origin.promisor", "true"},
		{"-C", tmp, "config", "remote.origin.partialclonefilter", "blob:none"},
		{"-C", tmp, "config", "core.sparseCheckout", "true"},
	} {
		if _, err := s.run(ctx, "", nil, args...); err != nil {
			return fmt.Errorf("git store %s: %w", s.store, err)
		}
	}
	if err := s.writeSparsePatterns(tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, s.store); err != nil {
		return fmt.Errorf("git store: %w", err)
	}
	return nil
}

// writeSparsePatterns writes the store's sparse-checkout patterns (gitignore
// syntax, not cone mode, so that single files can be named): each path
// anchored at the root, a dir with everything under it. The info dir is
// made here: git init makes it only from its templates, which an image
// with git alone lacks.
func (s *Shallow) writeSparsePatterns(store string) error {
	var b strings.Builder
	for _, p := range s.opts.Paths {
		b.WriteString("/" + path.Clean(p) + "\n")
	}
	info := filepath.Join(store, "info")
	if err := os.MkdirAll(info, 0o755); err != nil {
		return fmt.Errorf("git store: %w", err)
	}
	if err := os.WriteFile(filepath.Join(info, "sparse-checkout"), []byte(b.String()), 0o644); err != nil {
		return fmt.Errorf("git store: %w", err)
	}
	return nil
}

// Checkout writes the tree of rev (a commit in the store), limited to the
// paths, into dest, which must not exist. It fetches the blobs the tree
// lacks in one batch. A path that rev lacks is an error naming it, and
// leaves no dest behind.
func (s *Shallow) Checkout(ctx context.Context, rev, dest string) (err error) {
	if err := os.Mkdir(dest, 0o755); err != nil {
		return fmt.Errorf("checking out %.12s: %w", rev, err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dest)
		}
	}()
	index := dest + ".index" // the tree's own index, dropped once it is written
	defer os.Remove(index)
	// The sparse patterns may have changed since the store was made.
	if err := s.writeSparsePatterns(s.store); err != nil {
		return err
	}
	if _, err := s.run(ctx, "", []string{"GIT_INDEX_FILE=" + index},
		"--git-dir", s.store, "--work-tree", dest, "-c", "gc.autoDetach=false", "read-tree", "-m", "-u", rev); err != nil {
		return fmt.Errorf("checking out %.12s of %s: %w", rev, s.opts.URL, err)
	}
	for _, p := range s.opts.Paths {
		if _, err := os.Stat(filepath.Join(dest, filepath.FromSlash(p))); err != nil {
			return fmt.Errorf("%s at %.12s: %s: not in the repository", s.opts.URL, rev, p)
		}
	}
	return nil
}

// run runs git in dir with the environment plus env and, when a token is
// configured, the header that carries it. Its error holds git's output.
func (s *Shallow) run(ctx context.Context, dir string, env []string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, s.git, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "GIT_TERMINAL_PROMPT=0"), env...)
	if s.opts.TokenPath != "" && needsRemote(args) {
		header, err := s.authHeader()
		if err != nil {
			return nil, err
		}
		cmd.Env = withGitConfig(cmd.Env, "http."+s.auth+".extraHeader", header)
	}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(out.String())
		if cause := s.authCause(msg); cause != "" {
			return nil, fmt.Errorf("%s: git %s: %s", cause, args[firstCommand(args)], msg)
		}
		return nil, fmt.Errorf("git %s: %w: %s", args[firstCommand(args)], err, msg)
	}
	return out.Bytes(), nil
}

// authHeader reads the token file.
func (s *Shallow) authHeader() (string, error) {
	b, err := os.ReadFile(s.opts.TokenPath)
	if err != nil {
		return "", fmt.Errorf("reading the Git token: %w", err)
	}
	token := strings.TrimSpace(string(b))
	if token == "" {
		return "", fmt.Errorf("the Git token file %s is empty", s.opts.TokenPath)
	}
	return "Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(s.opts.Username+":"+token)), nil
}

// authCause names why git could not authenticate, from its output: git
// asks for a username when the server answers 401 and no credential it
// has was taken.
func (s *Shallow) authCause(out string) string {
	if !strings.Contains(out, "could not read Username") && !strings.Contains(out, "Authentication failed") &&
		!strings.Contains(out, "The requested URL returned error: 401") && !strings.Contains(out, "The requested URL returned error: 403") {
		return ""
	}
	if s.opts.TokenPath == "" {
		return fmt.Sprintf("the Git server %s asks for credentials and none is configured (give a token file)", s.auth)
	}
	return fmt.Sprintf("the Git server %s refused the credentials (username %q, token from %s)", s.auth, s.opts.Username, s.opts.TokenPath)
}

// needsRemote reports whether the git command may talk to the remote:
// fetch, and read-tree, which fetches missing blobs.
func needsRemote(args []string) bool {
	switch args[firstCommand(args)] {
	case "fetch", "read-tree":
		return true
	}
	return false
}

// firstCommand is the index of git's subcommand in args, past the global
// options (-C DIR, -c K=V, --git-dir DIR, --work-tree DIR).
func firstCommand(args []string) int {
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "-C", "-c", "--git-dir", "--work-tree":
			i++
		default:
			return i
		}
	}
	return len(args) - 1
}

// withGitConfig adds key=value to env as GIT_CONFIG_KEY_n/VALUE_n (git
// 2.31 or later), after any such settings env already has.
func withGitConfig(env []string, key, value string) []string {
	n := 0
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, "GIT_CONFIG_COUNT="); ok {
			if c, err := strconv.Atoi(v); err == nil {
				n = c
			}
		}
	}
	i := strconv.Itoa(n)
	return append(env, "GIT_CONFIG_COUNT="+strconv.Itoa(n+1), "GIT_CONFIG_KEY_"+i+"="+key, "GIT_CONFIG_VALUE_"+i+"="+value)
}
