# On a fresh clone (see README; times on a 2-core machine, after the install):
#   make grade    the instructor pipeline on the sample class of eight (about 2 min)
#   make check    the test suite without the whole-corpus autograde and the browser (about 16 min)
#   make test     the whole test suite, what CI runs (.ci/run; about 70 min)
#   make corpus   every spec in submissions/ graded and checked against its spec (about 25 min)
# Each creates .venv (or reuses it) and installs requirements.txt, the tested lock, first.

# The newest supported Python on PATH that runs (python3.13, then python3.12, then python3.11;
# a pyenv shim without that version installed does not count); `make PYTHON=...` overrides it.
# The lock needs 3.11.5 or later (soupsieve 4.1.3); Debian 12's python3.11 is 3.11.2.
# An existing $(VENV) is reused whatever its Python.
SUPPORTED  := 3.13 3.12 3.11
PY_CHECK   := import sys; sys.exit(not (3, 11, 5) <= sys.version_info[:3] and sys.version_info[:2] <= (3, 13))
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach v,$(SUPPORTED),$(shell python$(v) -c '$(PY_CHECK)' 2>/dev/null && command -v python$(v))))
endif
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: grade check test lint corpus venv release gpu-check gpu-wheels bench lab sandbox-tools hub hub-tools

$(STAMP): requirements.txt pyproject.toml
	@test -x $(PY) || test -n "$(PYTHON)" || { echo "No supported Python found: this course needs Python 3.11 (3.11.5 or later)," \
	  "3.12 or 3.13 as python3.13, python3.12 or python3.11 on PATH, or named with make PYTHON=/path/to/python3.X" >&2; exit 1; }
	@test -x $(PY) || $(PYTHON) -c '$(PY_CHECK)' || \
	  { echo "$(PYTHON) is Python $$($(PYTHON) -c 'import platform; print(platform.python_version())' 2>/dev/null):" \
	  "this course needs 3.11 (3.11.5 or later), 3.12 or 3.13" >&2; exit 1; }
	@# Where venv's own pip bootstrap (ensurepip) fails, the base Python's pip puts pip in the venv.
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || { echo "ensurepip failed: installing pip into $(VENV) with $(PYTHON)'s pip" >&2; \
	  $(PYTHON) -m venv --clear --without-pip $(VENV) && $(PYTHON) -m pip --python $(PY) install --quiet pip; }
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

venv: $(STAMP)

# Grading runs each notebook under bubblewrap (docs/grading-guarantees.md): Debian's package,
# installed here when it is missing and this is root on a Debian-like system.
sandbox-tools:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  { echo "The grading sandbox needs bubblewrap: sudo apt-get install bubblewrap (or your system's package)"; exit 1; }

# The sample class (coursetools/pipeline.py: SAMPLE_CLASS), graded with grade-parallel.
grade: $(STAMP) sandbox-tools
	$(PY) -m coursetools pipeline

# The fast loop: everything but the tests marked corpus (the whole corpus autograded once,
# about 13 min) and browser (JupyterLab in Chromium); tests/conftest.py marks them.
check: $(STAMP) sandbox-tools lint
	$(PY) -m pytest tests -m "not corpus and not browser and not hub" $(PYTEST_ARGS)

# The linter (ruff, configured in pyproject.toml); CI runs it as part of make test.
lint: $(STAMP)
	$(PY) -m ruff check .

test: $(STAMP) sandbox-tools hub-tools lint
	$(PY) -m pytest tests $(PYTEST_ARGS)

# Every spec in submissions/ graded in a throw-away copy and checked against its expected
# scores and diagnoses (python -m coursetools.tools.corpus; CORPUS_ARGS="--workers 4" etc.).
corpus: $(STAMP) sandbox-tools
	$(PY) -m coursetools.tools.corpus $(CORPUS_ARGS)

release: $(STAMP)
	$(PY) -m coursetools release

# Sequential against parallel autograding (docs/benchmarks.md): prints figures, asserts nothing.
bench: $(STAMP) sandbox-tools
	$(PY) benchmarks/bench_autograde.py $(BENCH_ARGS)

# A student's view: a private copy of the release (never edit release/ itself).
lab: $(STAMP)
	test -d student-copy/session10 || (mkdir -p student-copy && cp -r release/session10 student-copy/)
	cd student-copy/session10 && ../../$(VENV)/bin/jupyter lab

# The GPU path on a CUDA machine (docs/gpu-check.md). Needs only python3 with torch and
# numpy, so it uses .venv when there is one and python3 otherwise; no install step.
# Without CUDA it runs on the CPU and says that the CUDA run is still owed.
GPU_PY := $(shell test -x $(PY) && echo $(PY) || echo $(or $(PYTHON),python3))
gpu-check:
	$(GPU_PY) -m coursetools.tools.gpucheck $(GPU_CHECK_ARGS)

# Wheels for real nbgrader autograde on a GPU machine without Jupyter (gpu/device_run.sh).
gpu-wheels: $(STAMP)
	gpu/fetch_wheels.sh .whl

# A JupyterHub for the course on 127.0.0.1 with a sample class (docs/hub.md), as root: an
# instructor, a grader and three students as local users. Ctrl-C removes all it made.
# JupyterHub comes from deploy/requirements-hub.txt (constrained by requirements.txt, whose
# pins it leaves alone), configurable-http-proxy from npm into deploy/node_modules.
HUB_STAMP := $(VENV)/.hub-installed
$(HUB_STAMP): $(STAMP) deploy/requirements-hub.txt
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.txt -r deploy/requirements-hub.txt
	touch $@

deploy/node_modules/.bin/configurable-http-proxy: deploy/package.json deploy/package-lock.json
	@command -v npm >/dev/null || { echo "The hub's proxy needs node and npm: sudo apt-get install nodejs npm"; exit 1; }
	npm ci --prefix deploy --no-audit --no-fund --loglevel=error
	touch $@

hub-tools: $(HUB_STAMP) deploy/node_modules/.bin/configurable-http-proxy

hub: hub-tools sandbox-tools
	$(PY) deploy/hub.py $(HUB_ARGS)
