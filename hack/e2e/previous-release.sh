#!/usr/bin/env bash
# Builds what the e2e upgrade scenario starts from: the previous release,
# that is the newest commit whose VERSION is a release (no -dev suffix)
# other than the tree's own. Its `make release` (amd64 only) writes
# bin/e2e/previous/<version>/, made once per commit.
#
# Usage: hack/e2e/previous-release.sh   prints "<dist dir> <version>", or,
#                                       when there is none, "none: <why>"
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
log() { printf '[e2e previous release] %s\n' "$*" >&2; }

current=$(tr -d '[:space:]' <VERSION)
commit="" version=""
for c in $(git log --format=%H -- VERSION 2>/dev/null); do
	v=$(git show "$c:VERSION" 2>/dev/null | tr -d '[:space:]') || continue
	case $v in "" | *-dev) continue ;; esac
	[ "$v" = "$current" ] && continue
	commit=$c version=$v
	break
done
if [ -z "$commit" ]; then
	n=$(git rev-list --count HEAD 2>/dev/null || echo 0)
	shallow=""
	[ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = true ] && shallow=" (a shallow clone: fetch its history)"
	echo "none: no commit in this clone's history ($n commits$shallow) has a release VERSION other than $current"
	exit 0
fi

dist=$root/bin/e2e/previous/$version
if [ -f "$dist/SHA256SUMS" ] && [ "$(cat "$dist/.commit" 2>/dev/null)" = "$commit" ]; then
	echo "$dist $version"
	exit 0
fi
start=$(date +%s)
work=$root/bin/e2e/previous/src
git worktree remove --force "$work" >/dev/null 2>&1 || rm -rf "$work"
git worktree prune
git worktree add --detach "$work" "$commit" >/dev/null 2>&1
trap 'git -C "$root" worktree remove --force "$work" >/dev/null 2>&1 || true' EXIT
log "make release of $version (${commit:0:12}) into $dist"
make -s -C "$work" release DIST="$dist" LOCALBIN="$root/bin" RELEASE_ARCHS=amd64 >"$root/bin/e2e/previous-release.log" 2>&1 ||
	{ tail -n 30 "$root/bin/e2e/previous-release.log" >&2; log "make release of $version failed"; exit 1; }
echo "$commit" >"$dist/.commit"
log "built $version in $(($(date +%s) - start))s"
echo "$dist $version"
