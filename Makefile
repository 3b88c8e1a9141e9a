# Two commands on a fresh machine with Python 3.11 and pip: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow install clean

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "error: $(PYTHON) not found (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,train]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) -m runtime.demo

test: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -x --durations=15 -n auto --dist loadfile

test-slow: $(STAMP)
	JAX_PLATFORMS=cpu $(PY) -m pytest -q -m slow -n auto --dist loadfile

clean:
	rm -rf $(VENV) build *.egg-info
