# Two commands do everything on a fresh clone (see README):
#   make grade   the instructor pipeline on the bundled sample submissions
#   make test    the whole test suite
# Both create .venv (or reuse it) and install requirements.txt first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: grade test venv release gpu-check gpu-wheels bench lab sandbox-tools

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed (torch 2.14.1 wheels)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

# Grading runs each notebook under bubblewrap (docs/grading-guarantees.md): Debian's package,
# installed here when it is missing and this is root on a Debian-like system.
sandbox-tools:
	@command -v bwrap >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null; } || \
	  { echo "The grading sandbox needs bubblewrap: sudo apt-get install bubblewrap (or your system's package)"; exit 1; }

grade: $(STAMP) sandbox-tools
	$(PY) -m coursetools pipeline

test: $(STAMP) sandbox-tools
	$(PY) -m pytest tests

release: $(STAMP)
	$(PY) -m coursetools release

# A student's view: a private copy of the release (never edit release/ itself).
lab: $(STAMP)
	test -d student-copy/session10 || (mkdir -p student-copy && cp -r release/session10 student-copy/)
	cd student-copy/session10 && ../../$(VENV)/bin/jupyter lab

# The GPU path on a CUDA machine (docs/gpu-check.md). Needs only python3 with torch and
# numpy, so it uses .venv when there is one and python3 otherwise; no install step.
# Without CUDA it runs on the CPU and says that the CUDA run is still owed.
GPU_PY := $(shell test -x $(PY) && echo $(PY) || echo $(PYTHON))
gpu-check:
	$(GPU_PY) -m coursetools.gpucheck $(GPU_CHECK_ARGS)

# Wheels for real nbgrader autograde on a GPU machine without Jupyter (gpu/device_run.sh).
gpu-wheels: $(STAMP)
	gpu/fetch_wheels.sh .whl
