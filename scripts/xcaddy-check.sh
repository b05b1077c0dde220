#!/usr/bin/env bash
# make xcaddy-check: xcaddy.md as a newcomer follows it. Every ```sh block of
# the page runs as printed, in order, in one empty directory; the repository
# address it clones is served by this checkout (its committed HEAD), through
# git's url.<base>.insteadOf, so nothing in the commands is rewritten. Then
# the Caddy those commands built must list http.handlers.session_gate and
# validate Caddyfile.example: a page that no longer builds it fails here.
#
#   scripts/xcaddy-check.sh [page]    # default: xcaddy.md of this checkout
#
# xcaddy installs into a bin directory of the run, put first on PATH, never
# into $(go env GOPATH)/bin; Caddy's data and config directories are the
# run's too. Go's module and build caches are shared, as on any machine.
set -euo pipefail

repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
page=$(realpath "${1:-$repo/xcaddy.md}")
address=https://github.com/session-gate/session_gate.git

work=$(mktemp -d "${TMPDIR:-/tmp}/xcaddy-check.XXXXXX")
trap 'chmod -R u+w "$work" 2>/dev/null; rm -rf "$work"' EXIT
mkdir "$work/run" "$work/bin"

# The page's shell blocks: the lines between "```sh" and the closing "```".
awk '/^```sh[[:space:]]*$/ { inblock = 1; next } /^```[[:space:]]*$/ { inblock = 0; next } inblock' "$page" >"$work/commands.sh"
if ! grep -qF "$address" "$work/commands.sh"; then
	echo "xcaddy-check: the shell blocks of $page do not clone $address" >&2
	exit 1
fi

echo "xcaddy-check: running the shell blocks of $page in $work/run"
began=$(date +%s)
(
	cd "$work/run"
	export GOBIN="$work/bin" PATH="$work/bin:$PATH"
	export XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"
	export GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0="url.$repo.insteadOf" GIT_CONFIG_VALUE_0="$address"
	bash -euo pipefail -x "$work/commands.sh"
) || {
	echo "xcaddy-check: FAIL: a command of $page failed (above)" >&2
	exit 1
}
echo "xcaddy-check: the page's commands took $(($(date +%s) - began)) s"

cd "$work/run"
export XDG_DATA_HOME="$work/data" XDG_CONFIG_HOME="$work/config"
if ! ./caddy list-modules | grep -qx 'http.handlers.session_gate'; then
	echo "xcaddy-check: FAIL: the Caddy built by $page does not list http.handlers.session_gate" >&2
	exit 1
fi
if ! ./caddy validate --config "$repo/Caddyfile.example"; then
	echo "xcaddy-check: FAIL: the Caddy built by $page does not validate Caddyfile.example" >&2
	exit 1
fi
echo "xcaddy-check: ok: $(./caddy version | head -1), http.handlers.session_gate listed, Caddyfile.example valid"
