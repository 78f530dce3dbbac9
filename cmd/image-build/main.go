// Command image-build writes the prowjob-dispatcher container image without a
// container daemon or a base image from a registry: one layer with a CA
// bundle, /etc/passwd and /etc/group for a non-root numeric user, one with
// the static binary and, with --with-git, one with the build machine's git
// and its shared libraries. It writes an OCI image layout (skopeo, crane and
// podman read it) and, optionally, a docker-archive tarball (docker load,
// podman load). `make image` runs it; manifests/image/Containerfile builds
// the same image with podman or docker.
//
//	go run ./cmd/image-build --binary bin/linux-amd64/prowjob-dispatcher \
//	    --layout _output/image --archive _output/prowjob-dispatcher.tar \
//	    --tag prowjob-dispatcher:latest --tag prowjob-dispatcher:v1.2.3
package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// What the image holds. The user matches manifests/image/Containerfile and
// the manifests' securityContext (runAsNonRoot).
const (
	BinaryPath   = "/usr/local/bin/prowjob-dispatcher"
	CABundlePath = "/etc/ssl/certs/ca-certificates.crt"
	UID          = 65532
	// DefaultTag is the name the manifests use (manifests/base/*-deployment.yaml).
	DefaultTag = "prowjob-dispatcher:latest"
)

// Options say what to build and where to write it.
type Options struct {
	Binary   string   // the static linux binary
	CABundle string   // PEM CA bundle copied to CABundlePath
	Layout   string   // OCI image layout directory, replaced
	Archive  string   // docker-archive tarball, optional
	Tags     []string // image references, each a manifest of the layout and a tag of the archive
	Push     []string // references to push the image to (credentials: ~/.docker/config.json, as docker login writes them)
	Arch     string   // GOARCH of the binary
	Version  string   // org.opencontainers.image.version
	Revision string   // org.opencontainers.image.revision
	Created  time.Time
	// HostTools are host executables added, with their shared libraries,
	// in a layer of their own (GitTools for git).
	HostTools []string
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "image-build: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stdout io.Writer) error {
	var o Options
	var tags, push stringList
	var created int64
	fs := flag.NewFlagSet("image-build", flag.ContinueOnError)
	fs.StringVar(&o.Binary, "binary", "", "the static linux binary to put at "+BinaryPath)
	fs.StringVar(&o.CABundle, "ca-bundle", CABundlePath, "PEM CA bundle to put at "+CABundlePath)
	fs.StringVar(&o.Layout, "layout", "_output/image", "OCI image layout directory to write (replaced; empty: none)")
	fs.StringVar(&o.Archive, "archive", "", "docker-archive tarball to write as well (docker load, podman load)")
	fs.Var(&tags, "tag", "image reference, repeatable (default "+DefaultTag+")")
	fs.Var(&push, "push", "push the image to this reference too, repeatable (plain HTTP for localhost)")
	fs.StringVar(&o.Arch, "arch", "amd64", "GOARCH the binary was built for")
	fs.StringVar(&o.Version, "version", "dev", "version label")
	fs.StringVar(&o.Revision, "revision", "unknown", "revision label")
	withGit := fs.Bool("with-git", false, "add the build machine's git and its HTTP(S) transport, with their shared libraries, in a layer of their own (the Git backup and the job config from Git need git)")
	fs.Int64Var(&created, "created", 0, "creation time and file times, Unix seconds (e.g. the commit's; 0: the epoch), for a reproducible image")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Binary == "" {
		return errors.New("--binary is required")
	}
	o.Tags, o.Push = tags, push
	if *withGit {
		o.HostTools = GitTools
	}
	if len(o.Tags) == 0 {
		o.Tags = []string{DefaultTag}
	}
	o.Created = time.Unix(created, 0).UTC()
	img, err := Build(o)
	if err != nil {
		return err
	}
	if err := Write(img, o); err != nil {
		return err
	}
	digest, err := img.Digest()
	if err != nil {
		return fmt.Errorf("image digest: %w", err)
	}
	fmt.Fprintf(stdout, "%s %s\n", strings.Join(o.Tags, " "), digest)
	for _, p := range o.Push {
		ref, err := name.ParseReference(p)
		if err != nil {
			return fmt.Errorf("--push %q: %w", p, err)
		}
		if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
			return fmt.Errorf("--push %s: %w", p, err)
		}
		fmt.Fprintf(stdout, "pushed %s@%s\n", ref, digest)
	}
	return nil
}

// Build assembles the image in memory.
func Build(o Options) (v1.Image, error) {
	bin, err := os.ReadFile(o.Binary)
	if err != nil {
		return nil, fmt.Errorf("--binary: %w", err)
	}
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, fmt.Errorf("--ca-bundle: %w", err)
	}
	uid := strconv.Itoa(UID)
	base, err := layer(o.Created, []file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:" + uid + ":" + uid + ":nonroot:/home/nonroot:/sbin/nologin\n")},
		{name: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:" + uid + ":\n")},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(CABundlePath, "/"), mode: 0o644, data: ca},
		{name: "home/", mode: 0o755, dir: true},
		// Writable by the numeric user and, on OpenShift, by the arbitrary UID the SCC assigns, of group 0.
		{name: "home/nonroot/", mode: 0o770, dir: true, uid: UID, gid: 0},
		{name: "tmp/", mode: 0o1777, dir: true},
	})
	if err != nil {
		return nil, fmt.Errorf("base layer: %w", err)
	}
	app, err := layer(o.Created, []file{
		{name: "usr/", mode: 0o755, dir: true},
		{name: "usr/local/", mode: 0o755, dir: true},
		{name: "usr/local/bin/", mode: 0o755, dir: true},
		{name: strings.TrimPrefix(BinaryPath, "/"), mode: 0o755, data: bin},
	})
	if err != nil {
		return nil, fmt.Errorf("binary layer: %w", err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	adds := []mutate.Addendum{{Layer: base, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "image-build: CA bundle, passwd, group", Comment: "base"}}}
	if len(o.HostTools) > 0 {
		files, err := hostFiles(o.HostTools)
		if err != nil {
			return nil, fmt.Errorf("host tools layer: %w", err)
		}
		tools, err := layer(o.Created, files)
		if err != nil {
			return nil, fmt.Errorf("host tools layer: %w", err)
		}
		adds = append(adds, mutate.Addendum{Layer: tools, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "image-build: the build machine's " + strings.Join(o.HostTools, " ") + " and their shared libraries"}})
	}
	adds = append(adds, mutate.Addendum{Layer: app, History: v1.History{Created: v1.Time{Time: o.Created}, CreatedBy: "image-build: " + BinaryPath}})
	img, err = mutate.Append(img, adds...)
	if err != nil {
		return nil, fmt.Errorf("appending layers: %w", err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS, cf.Created = o.Arch, "linux", v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		Entrypoint: []string{BinaryPath},
		User:       uid + ":" + uid,
		WorkingDir: "/",
		Env:        []string{"PATH=/usr/local/bin:/usr/bin", "HOME=/home/nonroot", "SSL_CERT_FILE=" + CABundlePath},
		Labels: map[string]string{
			"org.opencontainers.image.title":    "prowjob-dispatcher",
			"org.opencontainers.image.version":  o.Version,
			"org.opencontainers.image.revision": o.Revision,
		},
	}
	return mutate.ConfigFile(img, cf)
}

// Write writes the image as an OCI layout, one manifest per tag, and as a
// docker archive when asked.
func Write(img v1.Image, o Options) error {
	refs := map[name.Reference]v1.Image{}
	for _, t := range o.Tags {
		ref, err := name.NewTag(t, name.WithDefaultRegistry(""))
		if err != nil {
			return fmt.Errorf("--tag %q: %w", t, err)
		}
		refs[ref] = img
	}
	if o.Layout != "" {
		if err := writeLayout(img, o); err != nil {
			return err
		}
	}
	if o.Archive != "" {
		if err := os.MkdirAll(filepath.Dir(o.Archive), 0o755); err != nil {
			return fmt.Errorf("--archive %s: %w", o.Archive, err)
		}
		if err := tarball.MultiRefWriteToFile(o.Archive, refs); err != nil {
			return fmt.Errorf("--archive %s: %w", o.Archive, err)
		}
	}
	return nil
}

// writeLayout replaces o.Layout with an OCI layout holding img once per tag.
func writeLayout(img v1.Image, o Options) error {
	if err := os.RemoveAll(o.Layout); err != nil {
		return fmt.Errorf("--layout %s: %w", o.Layout, err)
	}
	p, err := layout.Write(o.Layout, empty.Index)
	if err != nil {
		return fmt.Errorf("--layout %s: %w", o.Layout, err)
	}
	for _, t := range o.Tags {
		// The ref name is the tag alone, as skopeo's oci:DIR:TAG and podman's expect.
		tag := t[strings.LastIndex(t, ":")+1:]
		if err := p.AppendImage(img, layout.WithAnnotations(map[string]string{
			"org.opencontainers.image.ref.name": tag,
			"io.containerd.image.name":          t,
		})); err != nil {
			return fmt.Errorf("--layout %s: %w", o.Layout, err)
		}
	}
	return nil
}

type file struct {
	name string
	mode int64
	data []byte
	dir  bool
	uid  int
	gid  int
}

// layer makes a gzip layer of files, owned by root unless they say, all
// with the time mtime.
func layer(mtime time.Time, files []file) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: mtime, Uid: f.uid, Gid: f.gid, Typeflag: tar.TypeReg, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag, h.Size = tar.TypeDir, 0
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// stringList is a repeatable string flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }
