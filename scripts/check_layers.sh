#!/usr/bin/env bash
# The walls of the layout, checked on the source (comment lines ignored); `make lint` runs it.
#   - only src/io/ calls GDAL, only src/learned/ uses burn;
#   - nothing the runner stands on (methods, classifiers, networks, scene reading, kernels,
#     products, evaluation) imports crate::pipeline: the runner calls them, never the reverse;
#   - no cycle between the top-level modules (scripts/module_cycles.py over `crate::` paths).
set -euo pipefail
cd "$(dirname "$0")/../src"
status=0
# code lines of FILES... matching PATTERN, comments left out
hits() { local pat=$1; shift; grep -rnE "$pat" "$@" 2>/dev/null | grep -vE '^[^:]+:[0-9]+:\s*//' || true; }
check() { # what, pattern, files...
  local what=$1 pat=$2; shift 2
  local h; h=$(hits "$pat" "$@")
  if [ -n "$h" ]; then echo "layers: $what"; echo "$h"; status=1; fi
}
outside() { find . -name '*.rs' | sed 's|^\./||' | grep -vE "^($1)" ; }
check "GDAL outside src/io/" '\bgdal(_sys)?::|use gdal' $(outside 'io/')
check "burn outside src/learned/" '\bburn(_[a-z]+)?::|use burn' $(outside 'learned/')
below="report registry.rs method classic learned scene features temporal tiler io eval uncertainty postprocess plot reference.rs product.rs raster.rs suggest.rs log.rs stop.rs rng.rs time.rs error.rs"
check "crate::pipeline imported below the runner" 'crate::pipeline|super::super::pipeline' $below
python3 ../scripts/module_cycles.py || status=1
[ $status -eq 0 ] && echo "layers: every wall holds"
exit $status
