# Two commands do everything on a fresh clone (see README):
#   make grade   the instructor pipeline on the bundled sample submissions
#   make test    the whole test suite
# Both create .venv (or reuse it) and install requirements.txt first.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: grade test venv release gpu-check bench lab

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

lab: $(STAMP)
	cd release/session10 && ../../$(VENV)/bin/jupyter lab
