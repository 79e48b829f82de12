# `make test` and `make demo` work on a fresh machine: each creates .venv and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench clean

$(STAMP): setup.py constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

# the suite in TEST_WORKERS processes (pytest-xdist); TEST_WORKERS=0 runs it in this one
TEST_WORKERS ?= 2

test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) tests

demo: $(STAMP)
	$(PY) tools/demo.py --out demo

bench: $(STAMP)
	$(PY) benchmarks/load_caffemodel.py
	$(PY) benchmarks/forward.py
	$(PY) benchmarks/evaluate.py
	$(PY) benchmarks/data.py
	$(PY) benchmarks/train_step.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache demo
