package main

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// GitTools are the host files that give the image a working git (the Git
// backup and the job config from Git run prow's git client, which runs
// git): git itself and its HTTP(S) transport, in the folder that
// `git --exec-path` names on Debian.
var GitTools = []string{"/usr/bin/git", "/usr/lib/git-core/git-remote-http", "/usr/lib/git-core/git-remote-https"}

// hostFiles returns the files of a layer holding the host's executables
// at their own paths, each with the shared libraries and the loader that
// ldd says it needs, and the folders above them. Symbolic links are
// followed: each path holds the file's content.
func hostFiles(executables []string) ([]file, error) {
	paths := map[string]bool{}
	for _, exe := range executables {
		paths[exe] = true
		libs, err := sharedLibraries(exe)
		if err != nil {
			return nil, err
		}
		for _, l := range libs {
			paths[l] = true
		}
	}
	dirs := map[string]bool{}
	var files []file
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		real, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil, fmt.Errorf("host file %s: %w", p, err)
		}
		data, err := os.ReadFile(real)
		if err != nil {
			return nil, fmt.Errorf("host file %s: %w", p, err)
		}
		info, err := os.Stat(real)
		if err != nil {
			return nil, fmt.Errorf("host file %s: %w", p, err)
		}
		for d := path.Dir(p); d != "/" && !dirs[d]; d = path.Dir(d) {
			dirs[d] = true
		}
		files = append(files, file{name: strings.TrimPrefix(p, "/"), mode: int64(info.Mode().Perm()), data: data})
	}
	var out []file
	for _, d := range slices.Sorted(maps.Keys(dirs)) { // parents sort before children
		out = append(out, file{name: strings.TrimPrefix(d, "/") + "/", mode: 0o755, dir: true})
	}
	return append(out, files...), nil
}

// sharedLibraries lists the absolute paths of the libraries and the loader
// that ldd resolves for exe; a library ldd cannot find is an error.
func sharedLibraries(exe string) ([]string, error) {
	out, err := exec.Command("ldd", exe).Output()
	if err != nil {
		return nil, fmt.Errorf("ldd %s: %w", exe, err)
	}
	var libs []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.Contains(line, "=> not found") {
			return nil, fmt.Errorf("ldd %s: %s", exe, line)
		}
		if _, after, ok := strings.Cut(line, "=> "); ok {
			line = after
		}
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			libs = append(libs, f[0])
		}
	}
	return libs, sc.Err()
}
