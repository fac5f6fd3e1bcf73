#!/usr/bin/env bash
# CI's wheel smoke test: build the wheel (`pip wheel .`), install it — not editable — into a fresh
# venv and run `povwatch demo` from an empty folder. The dependencies are not downloaded again:
# the fresh venv sees the test venv's site-packages as a plain path (a .pth line), so its
# editable povwatch finder is not activated and `povwatch` can only come from the wheel.
# Usage: scripts/wheel_smoke.sh [demo options]   (default: 120 households; two periods)
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
venv="${TEST_VENV:-$repo/.venv}"   # the venv the tests ran in (its site-packages: the dependencies)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$venv"/bin/pip wheel -q --no-deps -w "$work/dist" .
python3 -m venv --without-pip "$work/venv"
site_packages="$("$venv"/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
fresh_site="$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$site_packages" > "$fresh_site/test-venv-dependencies.pth"
"$venv"/bin/pip --python "$work/venv/bin/python" install -q --no-deps "$work"/dist/povwatch-*.whl
mkdir "$work/run" && cd "$work/run"
installed="$("$work/venv/bin/python" -c 'import povwatch.flows.cli as m; print(m.__file__)')"
case "$installed" in
  "$repo"/*) echo "povwatch was imported from the repository, not the wheel: $installed" >&2; exit 1 ;;
esac
POVWATCH_PREFECT=local "$work/venv/bin/povwatch" demo "${@:---households=120}" --periods 2
for report in var/output/reports/*/latest.html; do test -s "$report"; done
echo "wheel smoke test passed: povwatch demo ran from $installed"
