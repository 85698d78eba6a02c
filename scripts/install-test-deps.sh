#!/usr/bin/env bash
# Installs the programs the tests drive for real (OpenSSH server and client,
# rsync, ssh-audit, asciinema, OpenLDAP slapd and ldap-utils, and Chromium for the web console's browser
# test) when they are missing. Debian packages only; nothing is downloaded
# from anywhere else (Playwright never fetches a browser: the test points
# it at /usr/bin/chromium).
set -euo pipefail

need=()
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have sshd      || need+=(openssh-server)
have ssh       || need+=(openssh-client)
have sftp      || need+=(openssh-client)
have rsync     || need+=(rsync)
have ssh-audit || need+=(ssh-audit)
have asciinema || need+=(asciinema)
have script    || need+=(bsdutils)
[ -x /usr/bin/chromium ] || need+=(chromium)
have visudo    || need+=(sudo) # provisioning tests: sudo -n and visudo -cf on the target
have sqlite3   || need+=(sqlite3) # a second process holding the store's write lock (faults tests)
have xauth     || need+=(xauth)   # the authorization matrix asks for X11 forwarding for real
have slapd      || need+=(slapd)      # testenv.StartSLAPD: the directory tests' LDAP servers
have ldapmodify || need+=(ldap-utils) # changes the directory while a test runs
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql) # testenv.StartPostgres runs initdb and postgres
have pdftotext  || need+=(poppler-utils) # report tests: pdftotext reads the PDFs back, pdftoppm renders page 1
have etcd       || need+=(etcd-server) # testenv.StartKubeAPIServer: the API server's store

install_debian_packages() {
[ ${#need[@]} -eq 0 ] && return 0
# De-duplicate.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "installing test dependencies: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "not root and no sudo: install ${need[*]} yourself" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# sshd refuses to start without its privilege separation directory.
$SUDO mkdir -p /run/sshd
}
install_debian_packages

# Test servers that Debian does not package are built from their Go modules
# (through the module proxy, never a prebuilt binary) once per version into a
# cache outside the repo, so a machine pays the build once and `make test`
# reuses it. testenv.GoTool finds them at the same path:
# $PORTCULLIS_TOOLS_DIR (default ~/.cache/portcullis-tools)/NAME-VERSION/BINARY.
TOOLS_DIR="${PORTCULLIS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/portcullis-tools}"

# go_tool NAME VERSION BINARY PACKAGE...: builds PACKAGE@VERSION (every
# package given) into $TOOLS_DIR/NAME-VERSION unless BINARY is already there.
# The build goes to a temporary directory first, so that an interrupted build
# never leaves a half-filled cache entry that later runs would trust.
go_tool() {
  local name=$1 version=$2 binary=$3; shift 3
  local dir="$TOOLS_DIR/$name-$version"
  [ -x "$dir/$binary" ] && return 0
  mkdir -p "$TOOLS_DIR"
  local tmp; tmp=$(mktemp -d "$TOOLS_DIR/.build-$name.XXXXXX")
  echo "building test server $name $version into $dir (once per machine)"
  local pkgs=()
  for p in "$@"; do pkgs+=("$p@$version"); done
  if ! GOBIN="$tmp" GOFLAGS=-trimpath go install "${pkgs[@]}"; then
    rm -rf "$tmp"; echo "building $name $version failed" >&2; return 1
  fi
  rm -rf "$dir"
  mv "$tmp" "$dir"
}

# kube_apiserver_tool VERSION STAGING_VERSION: builds kube-apiserver into
# $TOOLS_DIR/kube-apiserver-VERSION. k8s.io/kubernetes cannot be built with
# `go install module@version`: its go.mod replaces every k8s.io staging module
# with a directory of its own tree (./staging/src/k8s.io/NAME), and replace
# directives of a dependency are ignored. So this writes a small wrapper
# module that requires k8s.io/kubernetes and replaces each staging module
# named in that version's go.mod with the same module published at
# STAGING_VERSION, then builds the wrapper's main (the upstream command's).
# Like go_tool, it builds in a temporary directory and moves the result in
# only when the build succeeded.
kube_apiserver_tool() {
  local version=$1 staging=$2
  local dir="$TOOLS_DIR/kube-apiserver-$version"
  # A build without the version stamped (an earlier script) reports
  # v0.0.0-master, which kubectl version cannot parse: relink it (the
  # compiled packages are in Go's build cache, so that is quick).
  [ -x "$dir/kube-apiserver" ] && "$dir/kube-apiserver" --version 2>/dev/null | grep -qx "Kubernetes $version" && return 0
  mkdir -p "$TOOLS_DIR"
  local tmp; tmp=$(mktemp -d "$TOOLS_DIR/.build-kube-apiserver.XXXXXX")
  echo "building test server kube-apiserver $version into $dir (once per machine, ~10 minutes)"
  if ! (
    set -euo pipefail
    mkdir -p "$tmp/src" "$tmp/bin"
    cd "$tmp/src"
    local gomod
    gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
    [ -f "$gomod" ] || { echo "no go.mod for k8s.io/kubernetes@$version" >&2; exit 1; }
    {
      echo "module portcullis.test/kube-apiserver"
      echo
      echo "go 1.26.0"
      echo
      echo "require k8s.io/kubernetes $version"
      echo
      sed -n 's#^[[:space:]]*\(k8s\.io/[A-Za-z0-9._-]*\) => \./staging/.*$#replace \1 => \1 '"$staging"'#p' "$gomod"
    } >go.mod
    grep -q '^replace k8s.io/api ' go.mod || { echo "no staging replaces found in $gomod" >&2; exit 1; }
    cat >main.go <<'GO'
// Command kube-apiserver is the upstream Kubernetes API server, built for the
// tests from the module proxy.
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO
    go mod tidy
    local minor=${version#v*.}; minor=${minor%%.*}
    local major=${version#v}; major=${major%%.*}
    local pkg=k8s.io/component-base/version
    GOFLAGS=-trimpath go build -ldflags "-X $pkg.gitVersion=$version -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
      -o "$tmp/bin/kube-apiserver" .
  ); then
    rm -rf "$tmp"; echo "building kube-apiserver $version failed" >&2; return 1
  fi
  rm -rf "$dir"
  mv "$tmp/bin" "$dir"
  rm -rf "$tmp"
}

# One line per test server (keep them sorted by name):
go_tool govmomi v0.46.0 vcsim github.com/vmware/govmomi/vcsim github.com/vmware/govmomi/govc
kube_apiserver_tool v1.37.2 v0.37.2
go_tool versitygw v1.8.0 versitygw github.com/versity/versitygw/cmd/versitygw
