#!/usr/bin/env bash
# The repository speaks of the project alone: no numbered issues, work periods or sessions in
# the docs, the code, the tests, the scripts or the benches. Exits 1 naming each hit.
set -euo pipefail
cd "$(dirname "$0")/.."
pattern='\b(issue|session|stop|sprint)[- ]?#?[0-9]+\b|\bwork periods?\b|\bsessions? [0-9]|\bthe issue\b|\bissue$'
if grep -rnIiE "$pattern" README.md BENCHMARKS.md docs src tests scripts benches deploy pipelines \
  --exclude=check_history_words.sh; then
  echo "words of how the project was developed (above): say what was measured and when instead" >&2
  exit 1
fi
echo "history words: none"
