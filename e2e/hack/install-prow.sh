#!/usr/bin/env bash
# Builds Prow's own binaries (prow-controller-manager, mkpj, phony, hook,
# checkconfig) from the sigs.k8s.io/prow module that go.mod requires, in a
# module of their own (prow's plugins need go.sum entries this project does not
# carry), and caches them under $PROW_BIN_DIR. Only a missing binary triggers a
# build: the first one takes about 6 minutes on an idle 2-core machine (55 on one
# shared at load 25), later runs are instant. About 380 MB; never commit them.
#
# Prints the binaries' folder (for PROW_BIN_DIR) on its last line.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PROW_VERSION="${PROW_VERSION:-$(cd "$root" && go list -m -f '{{.Version}}' sigs.k8s.io/prow)}"
PROW_BIN_DIR="${PROW_BIN_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prowjob-dispatcher/prow-${PROW_VERSION}}"
cmds=(prow-controller-manager mkpj phony hook checkconfig)

log() { echo "install-prow: $*" >&2; }

missing=()
for c in "${cmds[@]}"; do
  [ -x "$PROW_BIN_DIR/$c" ] || missing+=("$c")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "building ${missing[*]} from sigs.k8s.io/prow@${PROW_VERSION} (cached in $PROW_BIN_DIR)"
  mkdir -p "$PROW_BIN_DIR"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  printf 'module prowbuild\n\ngo 1.24\n\nrequire sigs.k8s.io/prow %s\n' "$PROW_VERSION" > "$work/go.mod"
  {
    printf '//go:build tools\n\npackage main\n\nimport (\n'
    for c in "${missing[@]}"; do printf '\t_ "sigs.k8s.io/prow/cmd/%s"\n' "$c"; done
    printf ')\n'
  } > "$work/tools.go"
  pkgs=()
  for c in "${missing[@]}"; do pkgs+=("sigs.k8s.io/prow/cmd/$c"); done
  start=$SECONDS
  (cd "$work" && GOFLAGS=-mod=mod go mod tidy -e >&2 && \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$work/bin/" "${pkgs[@]}" >&2)
  for c in "${missing[@]}"; do mv "$work/bin/$c" "$PROW_BIN_DIR/$c"; done
  log "built in $((SECONDS - start)) s"
fi

echo "$PROW_BIN_DIR"
