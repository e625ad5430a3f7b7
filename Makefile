# fpsolver: `make demo` and `make test` install into .venv first when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NP     ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install demo test test-fast test-mpi bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find-python.sh) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,mesh]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/fpsolver demo --out out/demo

test: install
	$(PY) -m pytest -m "not slow" -q

test-slow: install
	$(PY) -m pytest -m slow -q

test-mpi: install
	$(VENV)/bin/mpirun -n $(NP) $(PY) -m pytest -m mpi -q -p no:cacheprovider

bench: install
	$(PY) benchmarks/particles.py
	$(PY) benchmarks/kinetic.py

clean:
	rm -rf $(VENV) out build *.egg-info
