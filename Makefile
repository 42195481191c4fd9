# Two commands do everything on a fresh clone (see README):
#   make grade   the instructor pipeline on the bundled sample submissions
#   make test    the whole test suite
# Both create .venv (or reuse it) and install requirements.txt first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: grade test venv release gpu-check gpu-wheels bench lab

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is needed (torch 2.14.1 wheels)"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

venv: $(STAMP)

grade: $(STAMP)
	$(PY) -m coursetools pipeline

test: $(STAMP)
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
