package main

import (
	"archive/tar"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// -layout checks an image make image built (make image-check) instead of
// building a small one from testdata/fakebin.
var (
	builtLayout   = flag.String("layout", "", "OCI layout written by make image, to check instead of a test image")
	builtTag      = flag.String("tag", DefaultTag, "with -layout: the tag to check")
	builtRevision = flag.String("revision", "", "with -layout: the revision `version` must print")
)

// TestImage reads an image back from its OCI layout as a runtime would: the
// manifest its tag names, the config's entrypoint and user, and the
// binary in its layers, which must run `version` and print the stamped
// revision. Without -layout it builds one from testdata/fakebin first.
func TestImage(t *testing.T) {
	dir, tag, revision := *builtLayout, *builtTag, *builtRevision
	if dir == "" {
		tmp := t.TempDir()
		bin := filepath.Join(tmp, "fakebin")
		revision = "0123456789abcdef"
		build := exec.Command("go", "build", "-ldflags", "-X main.version=v9.9.9 -X main.revision="+revision, "-o", bin, "./testdata/fakebin")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("building testdata/fakebin: %v\n%s", err, out)
		}
		dir = filepath.Join(tmp, "layout")
		tag = "registry.example.com/ci/prowjob-dispatcher:v9.9.9"
		archive := filepath.Join(tmp, "image.tar")
		if err := run([]string{"--binary", bin, "--layout", dir, "--archive", archive, "--tag", tag, "--tag", DefaultTag,
			"--version", "v9.9.9", "--revision", revision, "--created", "1700000000"}, io.Discard); err != nil {
			t.Fatal(err)
		}
		// The docker archive holds the same image under both tags.
		for _, tg := range []string{tag, DefaultTag} {
			if _, err := tarball.ImageFromPath(archive, mustTag(t, tg)); err != nil {
				t.Errorf("docker archive: %s: %v", tg, err)
			}
		}
	} else if revision == "" {
		t.Fatal("-layout needs -revision")
	}

	img := imageFromLayout(t, dir, tag)
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(cf.Config.Entrypoint, []string{BinaryPath}) {
		t.Errorf("entrypoint %q, want [%s]", cf.Config.Entrypoint, BinaryPath)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (numeric, so runAsNonRoot can check it)", cf.Config.User)
	}
	if cf.OS != "linux" || cf.Config.Labels["org.opencontainers.image.revision"] != revision {
		t.Errorf("os %q, labels %v, want linux and revision %s", cf.OS, cf.Config.Labels, revision)
	}

	files := extract(t, img)
	if !strings.Contains(files["etc/passwd"], ":65532:65532:") {
		t.Errorf("/etc/passwd has no entry for 65532:\n%s", files["etc/passwd"])
	}
	if !strings.Contains(files[strings.TrimPrefix(CABundlePath, "/")], "BEGIN CERTIFICATE") {
		t.Errorf("%s holds no certificate", CABundlePath)
	}
	bin := filepath.Join(t.TempDir(), "prowjob-dispatcher")
	if err := os.WriteFile(bin, []byte(files[strings.TrimPrefix(BinaryPath, "/")]), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s version from the image: %v\n%s", BinaryPath, err, out)
	}
	if !regexp.MustCompile(`(?m)^revision: `+regexp.QuoteMeta(revision)+`$`).Match(out) || !strings.Contains(string(out), "version: ") {
		t.Errorf("%s version printed\n%s\nwant revision %s", BinaryPath, out, revision)
	}
	t.Logf("%s version:\n%s", BinaryPath, out)
}

// TestManifestsNameTheDefaultTag: the Deployments name the image as make
// image tags it by default.
func TestManifestsNameTheDefaultTag(t *testing.T) {
	paths, err := filepath.Glob("../../manifests/base/*-deployment.yaml")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no Deployments under manifests/base: %v", err)
	}
	re := regexp.MustCompile(`(?m)^\s+image:\s*(\S+)\s*$`)
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		m := re.FindAllSubmatch(data, -1)
		if len(m) == 0 {
			t.Errorf("%s: no image", p)
		}
		for _, img := range m {
			if string(img[1]) != DefaultTag {
				t.Errorf("%s: image %s, want %s (what make image tags)", p, img[1], DefaultTag)
			}
		}
	}
}

func mustTag(t *testing.T, s string) *name.Tag {
	t.Helper()
	tag, err := name.NewTag(s) // as docker load reads it: short names are docker.io's
	if err != nil {
		t.Fatal(err)
	}
	return &tag
}

// imageFromLayout finds the image whose ref name is tag's tag in an OCI layout.
func imageFromLayout(t *testing.T, dir, tag string) v1.Image {
	t.Helper()
	idx, err := layout.ImageIndexFromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := tag[strings.LastIndex(tag, ":")+1:]
	for _, d := range m.Manifests {
		if d.Annotations["org.opencontainers.image.ref.name"] == want {
			img, err := idx.Image(d.Digest)
			if err != nil {
				t.Fatal(err)
			}
			return img
		}
	}
	t.Fatalf("%s has no manifest named %s: %+v", dir, want, m.Manifests)
	return nil
}

// extract returns the regular files of the image's layers by path, the
// later layers' over the earlier.
func extract(t *testing.T, img v1.Image) map[string]string {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			if h.Typeflag == tar.TypeReg {
				data, err := io.ReadAll(tr)
				if err != nil {
					t.Fatal(err)
				}
				files[strings.TrimPrefix(h.Name, "/")] = string(data)
			}
		}
		rc.Close()
	}
	return files
}

// TestContainerfileAgrees: the Containerfile for podman and docker builds
// the image this tool builds: same entrypoint, user, CA bundle and stamping,
// and its target with-git copies what --with-git adds (GitTools).
func TestContainerfileAgrees(t *testing.T) {
	data, err := os.ReadFile("../../manifests/image/Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`ENTRYPOINT ["` + BinaryPath + `"]`,
		"USER 65532:65532",
		"/out" + BinaryPath,
		CABundlePath,
		"CGO_ENABLED=0",
		"-X main.version=${VERSION} -X main.revision=${REVISION}",
		"FROM scratch",
		"FROM without-git AS with-git",
		"for f in " + strings.Join(GitTools, " ") + "; do",
	} {
		if !strings.Contains(string(data), want) {
			t.Errorf("manifests/image/Containerfile does not say %s", want)
		}
	}
}

// TestImageWithGit: with --with-git, the image runs the build machine's git
// and its HTTPS transport from its own layers: run chrooted into the
// image's files, as root can without a container runtime.
func TestImageWithGit(t *testing.T) {
	for _, tool := range append([]string{"/usr/bin/ldd"}, GitTools...) {
		if _, err := os.Stat(tool); err != nil {
			t.Skipf("no %s on this machine", tool)
		}
	}
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "fakebin")
	build := exec.Command("go", "build", "-o", bin, "./testdata/fakebin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building testdata/fakebin: %v\n%s", err, out)
	}
	img, err := Build(Options{Binary: bin, CABundle: CABundlePath, Arch: "amd64", HostTools: GitTools})
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(cf.Config.Env, "PATH=/usr/local/bin:/usr/bin") {
		t.Errorf("env %q: git's folder is not on PATH", cf.Config.Env)
	}
	files := extract(t, img)
	for _, tool := range GitTools {
		if _, ok := files[strings.TrimPrefix(tool, "/")]; !ok {
			t.Errorf("the image holds no %s", tool)
		}
	}
	if os.Geteuid() != 0 {
		t.Skip("running git chrooted into the image needs root")
	}
	root := filepath.Join(tmp, "rootfs")
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "tmp"), 0o1777); err != nil {
		t.Fatal(err)
	}
	// A container runtime mounts /dev; git opens /dev/null.
	if err := os.MkdirAll(filepath.Join(root, "dev"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mknod(filepath.Join(root, "dev", "null"), syscall.S_IFCHR|0o666, 1<<8|3); err != nil {
		t.Fatal(err)
	}
	chrooted := func(args ...string) (string, error) {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: root}
		cmd.Dir = "/"
		cmd.Env = append(cf.Config.Env, "GIT_TERMINAL_PROMPT=0")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := chrooted("/usr/bin/git", "--version"); err != nil || !strings.HasPrefix(out, "git version") {
		t.Fatalf("git --version in the image: %v\n%s", err, out)
	}
	if out, err := chrooted("/usr/bin/git", "init", "-q", "/tmp/repo"); err != nil {
		t.Fatalf("git init in the image: %v\n%s", err, out)
	}
	// No server listens there: the transport must load and fail to connect.
	out, err := chrooted("/usr/bin/git", "ls-remote", "https://127.0.0.1:1/repo.git")
	if err == nil || !strings.Contains(out, "127.0.0.1") || strings.Contains(out, "shared librar") || strings.Contains(out, "remote helper") {
		t.Errorf("git ls-remote https in the image: %v, want a connection failure from git-remote-https:\n%s", err, out)
	}
}
