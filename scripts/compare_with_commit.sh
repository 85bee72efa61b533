#!/usr/bin/env bash
# Products of the shipped pipelines, made by another commit and by this working tree, compared.
#
#   bash scripts/compare_with_commit.sh [COMMIT] [PIPELINE ...]
#
# COMMIT defaults to 64278d1 (the last commit before the method interface);
# PIPELINE defaults to pipelines/demo.toml pipelines/fusion-study.toml. Builds COMMIT in a
# git worktree under $WORK (default /tmp/geofuse-compare), runs both binaries with
# --device cpu into separate folders and prints scripts/compare_products.py's report for each
# pipeline: which products are byte-identical, and for the others which bands, metadata items,
# sidecars, models and metrics differ. Exits 1 when any product's pixels differ.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
commit=${1:-64278d1}
shift || true
pipes=("$@")
[ ${#pipes[@]} -gt 0 ] || pipes=(pipelines/demo.toml pipelines/fusion-study.toml)
work=${WORK:-/tmp/geofuse-compare}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/geofuse/target}
mkdir -p "$work"
if [ ! -d "$work/src-$commit" ]; then
  git -C "$root" worktree add --detach "$work/src-$commit" "$commit" >/dev/null
fi
# Both trees share the target folder, and cargo keys the geofuse package by its path relative
# to the workspace: each build would take the other's as fresh. Cleaning the package alone
# (not its dependencies) makes each build compile its own sources.
build() { (cd "$1" && cargo clean --release -p geofuse -q && cargo build --release --locked -q); }
build "$work/src-$commit"
cp "$CARGO_TARGET_DIR/release/geofuse" "$work/geofuse-$commit"
build "$root"
cp "$CARGO_TARGET_DIR/release/geofuse" "$work/geofuse-new"
cmp -s "$work/geofuse-$commit" "$work/geofuse-new" && echo "note: both binaries are the same bytes" >&2
status=0
for p in "${pipes[@]}"; do
  name=$(basename "$p" .toml)
  echo "== $p: $commit vs working tree ($(git -C "$root" rev-parse --short HEAD)$(git -C "$root" diff --quiet || echo '+changes'))"
  "$work/geofuse-$commit" run "$root/$p" --device cpu --force -q --out "$work/out-$commit/$name" >/dev/null
  "$work/geofuse-new" run "$root/$p" --device cpu --force -q --out "$work/out-new/$name" >/dev/null
  /usr/bin/python3 "$root/scripts/compare_products.py" "$work/out-$commit/$name" "$work/out-new/$name" || status=1
done
exit $status
