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

# One line per test server (keep them sorted by name):
go_tool govmomi v0.46.0 vcsim github.com/vmware/govmomi/vcsim github.com/vmware/govmomi/govc
go_tool versitygw v1.8.0 versitygw github.com/versity/versitygw/cmd/versitygw
