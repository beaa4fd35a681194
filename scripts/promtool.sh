#!/usr/bin/env bash
# Print the path of Prometheus's promtool, getting it first when needed (the monitoring tests
# run `promtool check config`, `check rules` and `test rules` with it).
#
# A promtool on PATH is used as it is. Otherwise Debian's prometheus package (2.42 on Debian 12)
# is downloaded with `apt-get download`, not installed (its install would start a Prometheus),
# and only promtool is taken out of it, into .cache/tools/. As root, the package lists are
# updated first when the download finds nothing.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${REPO_ROOT}/.cache/tools/promtool"
die() { printf 'promtool.sh: %s\n' "$*" >&2; exit 1; }

if command -v promtool >/dev/null 2>&1; then
    command -v promtool
    exit 0
fi
if [[ -x "${DEST}" ]] && "${DEST}" --version >/dev/null 2>&1; then
    printf '%s\n' "${DEST}"
    exit 0
fi
command -v apt-get >/dev/null 2>&1 && command -v dpkg-deb >/dev/null 2>&1 ||
    die "no promtool on PATH, and no apt-get to fetch Debian's prometheus package: install Prometheus's promtool"
tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT
download() { (cd "${tmp}" && apt-get download -q prometheus >/dev/null 2>&1); }
if ! download; then
    [[ ${EUID} -eq 0 ]] || die "apt-get download prometheus failed (as root, 'apt-get update' first)"
    apt-get update -qq >/dev/null 2>&1 || true
    download || die "apt-get download prometheus failed: no Debian package lists reachable"
fi
dpkg-deb -x "${tmp}"/prometheus_*.deb "${tmp}/root"
mkdir -p "$(dirname "${DEST}")"
cp "${tmp}/root/usr/bin/promtool" "${DEST}.tmp"
mv "${DEST}.tmp" "${DEST}"
printf '%s\n' "${DEST}"
