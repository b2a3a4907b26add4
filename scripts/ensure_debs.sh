#!/usr/bin/env bash
# Installs the named Debian packages when missing (as root on a fresh machine); prints one line.
#
#   bash scripts/ensure_debs.sh prometheus prometheus-alertmanager prometheus-node-exporter ...
#
# The servers among them (prometheus, alertmanager, the exporters) would start their system services
# on 0.0.0.0 and on the stack's ports: service starts are forbidden during the install (policy-rc.d)
# unless something forbids them already. The stack (scripts/stack.sh) runs its own instances.
# ENSURE_DEBS_LOG names a file for apt-get's output (default: a temporary file, shown on failure).
set -euo pipefail
missing=()
for pkg in "$@"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
[ "$(id -u)" = 0 ] || { echo "ensure_debs.sh: error: ${missing[*]} not installed and we are not root: apt-get install ${missing[*]}" >&2; exit 1; }
command -v apt-get >/dev/null || { echo "ensure_debs.sh: error: ${missing[*]} not installed and apt-get is unavailable" >&2; exit 1; }
echo "==> installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
policy=/usr/sbin/policy-rc.d
added_policy=""
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && added_policy=1
fi
log="${ENSURE_DEBS_LOG:-$(mktemp)}"
rc=0
{
  apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
} >"$log" 2>&1 || rc=$?
[ -z "$added_policy" ] || rm -f "$policy"
if [ "$rc" -ne 0 ]; then
  echo "ensure_debs.sh: error: apt-get install ${missing[*]} failed; log $log (last 20 lines):" >&2
  tail -n 20 "$log" >&2
  exit 1
fi
[ -n "${ENSURE_DEBS_LOG:-}" ] || rm -f "$log"
