#!/usr/bin/env bash
# Seasons at scale: wall time and peak RSS of `geofuse run` with the forest (sampling, training
# and mapping: every tile reads its window of every date, regularises it and computes the
# temporal features, twice) on one synthetic season of SIZE x SIZE with 10, 20 and 40 optical
# dates (and as many SAR dates), to show time linear in the dates and memory flat.
#   bash benches/season/run.sh [SIZE] [DATES...]   (default 2048 10 20 40; BIN=path/to/geofuse)
# Prints one line per run: dates, seconds, peak RSS (MiB), ns per date-pixel.
set -euo pipefail
SIZE=${1:-2048}
shift || true
DATES=${*:-10 20 40}
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${BIN:-${CARGO_TARGET_DIR:-$HERE/../../target}/release/geofuse}
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
for n in $DATES; do
  every=$((245 / n))
  "$BIN" synth --out "$W/s$n" --size "$SIZE" --seed 11 --dates "$n" --sar-every-days "$every" >/dev/null
  sar=$(ls "$W/s$n/s1" | wc -l)
  # The forest alone: the season's reading, regularisation and temporal features dominate.
  /usr/bin/python3 -c 'import sys; p = sys.argv[1]; t = open(p).read(); open(p, "w").write(t[: t.index("\n[[methods]]\nname = \"boosted\"")] + "\n")' "$W/s$n/pipeline.toml"
  /usr/bin/time -f "%e %M" -o "$W/time" "$BIN" run "$W/s$n/pipeline.toml" --out "$W/r$n" -q --device cpu >/dev/null
  read -r secs kib <"$W/time"
  ns=$(echo "scale=2; $secs * 1000000000 / (($n + $sar) * $SIZE * $SIZE)" | bc)
  echo "dates $n sar_dates $sar seconds $secs peak_rss_mib $((kib / 1024)) ns_per_date_pixel $ns"
  rm -rf "$W/s$n" "$W/r$n"
done
