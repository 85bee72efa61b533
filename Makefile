# geofuse: the two commands a newcomer runs (see README.md).
#   make demo   installs what is missing, builds, runs pipelines/demo.toml on the shipped scene
#   make test   installs what is missing, builds, runs every test (release profile, like the demo)
# Both use the release profile and the same dependency features (Cargo.toml: feature
# alignment), so dependencies compile once.

CARGO ?= cargo
BIN := $(or $(CARGO_TARGET_DIR),target)/release/geofuse

.PHONY: setup build demo test lint bench clean

setup:
	@bash scripts/setup.sh

build: setup
	$(CARGO) build --release --locked

demo: build
	$(BIN) run pipelines/demo.toml
	@for m in handcrafted learned-kernel; do /usr/bin/python3 -m osgeo_utils.samples.validate_cloud_optimized_geotiff -q out/demo/demo/$$m.tif && echo "out/demo/demo/$$m.tif: valid COG"; done

test: setup
	$(CARGO) test --release --locked

lint:
	bash scripts/check_history_words.sh
	bash scripts/check_layers.sh
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --release --locked --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --release --locked --no-deps

bench: setup
	$(CARGO) bench --locked

clean:
	rm -rf out
