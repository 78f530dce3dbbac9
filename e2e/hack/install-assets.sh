#!/usr/bin/env bash
# Installs what the e2e suite runs for real: etcd, Prometheus and Chromium from
# Debian's packages, and kube-apiserver built from the k8s.io/kubernetes Go module (no
# Docker, no prebuilt downloads). The kube-apiserver build is cached under
# $ASSETS_DIR, so only the first run pays for it (about 8 minutes on 2 cores
# with cold Go caches).
#
# It also builds Prow's own binaries (install-prow.sh, cached the same way under
# prow-<version>; the e2e finds them there or in PROW_BIN_DIR) unless
# INSTALL_PROW=0.
#
# Prints the assets folder (for KUBEBUILDER_ASSETS) on its last line.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.34.2}"
STAGING_VERSION="v0${K8S_VERSION#v1}"   # v1.34.2 -> v0.34.2
ASSETS_DIR="${ASSETS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/prowjob-dispatcher/assets-${K8S_VERSION}}"
mkdir -p "$ASSETS_DIR"

log() { echo "install-assets: $*" >&2; }

need_apt=()
command -v etcd >/dev/null 2>&1 || need_apt+=(etcd-server)
command -v prometheus >/dev/null 2>&1 || need_apt+=(prometheus)
command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
command -v kubectl >/dev/null 2>&1 || need_apt+=(kubernetes-client)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)   # TestStatusPage's headless browser
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing ${need_apt[*]}; run as root or install them with apt-get"
    exit 1
  fi
  log "apt-get install ${need_apt[*]}"
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >&2
  # Debian starts no service here, but stop any that a package did start so the
  # suite owns its ports.
  systemctl stop etcd prometheus >/dev/null 2>&1 || true
fi

ln -sf "$(command -v etcd)" "$ASSETS_DIR/etcd"
ln -sf "$(command -v kubectl)" "$ASSETS_DIR/kubectl"

if [ ! -x "$ASSETS_DIR/kube-apiserver" ]; then
  log "building kube-apiserver $K8S_VERSION from the k8s.io/kubernetes module (cached in $ASSETS_DIR)"
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  gomod="$(cd "$work" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@${K8S_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')"
  {
    echo "module kubeapiserverbuild"
    echo
    echo "go 1.24"
    echo
    echo "require k8s.io/kubernetes ${K8S_VERSION}"
    echo
    # Each ./staging replace of k8s.io/kubernetes points at the published module.
    sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/src/k8s.io/[a-z0-9-]*$#replace \1 => \1 '"${STAGING_VERSION}"'#p' "$gomod"
  } > "$work/go.mod"
  # Stamp the version, as Kubernetes' own build does, so the server reports it.
  minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
  version_ldflags="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} -X k8s.io/component-base/version.gitTreeState=clean"
  printf '//go:build tools\n\npackage main\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > "$work/tools.go"
  (cd "$work" && go mod tidy -e >&2 && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w ${version_ldflags}" -o "$ASSETS_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2)
  mv "$ASSETS_DIR/kube-apiserver.tmp" "$ASSETS_DIR/kube-apiserver"
fi

if [ "${INSTALL_PROW:-1}" != 0 ]; then
  "$(dirname "${BASH_SOURCE[0]}")/install-prow.sh" >&2
fi

echo "$ASSETS_DIR"
