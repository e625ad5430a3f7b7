# fpsolver: `make demo` and `make test` install into .venv first when needed.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
NP     ?= 2
export PIP_DISABLE_PIP_VERSION_CHECK = 1

.PHONY: install lint demo test test-slow test-long test-mpi bench bench-brian clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $$(scripts/find-python.sh) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test,mesh]'
	@touch $(STAMP)

demo: install
	$(VENV)/bin/fpsolver demo --out out/demo

test: install lint
	$(PY) -m pytest -m "not slow" -q

# ruff: pyflakes/pycodestyle, pydocstyle (google) and import order ([tool.ruff] in pyproject.toml)
lint: install
	$(VENV)/bin/ruff check fpsolver tests benchmarks demos scripts

# the checks behind the README's accuracy claims first, then the demos, Docker and MPI runs
CLAIMS := tests/test_kinetic_sweep.py tests/test_kinetic_accuracy.py tests/test_particles_accuracy.py
test-slow: install
	$(PY) -m pytest -m "slow and not long" -q $(CLAIMS)
	$(PY) -m pytest -m "slow and not long" -q tests $(addprefix --ignore=,$(CLAIMS))

# the longest checks, on one rank (tests/test_kinetic_steep.py: torus-cubic, ~1.5 min)
test-long: install
	$(PY) -m pytest -m long -q tests

test-mpi: install
	$(VENV)/bin/mpirun -n $(NP) $(PY) -m pytest -m mpi -q -p no:cacheprovider

# BENCH_ARGS=--quick: a smoke run of the benchmarks (what .ci/run does)
bench: install
	$(PY) benchmarks/particles.py $(BENCH_ARGS)
	$(PY) benchmarks/kinetic.py $(BENCH_ARGS)
	$(PY) benchmarks/steady.py $(BENCH_ARGS)
	NUMBA_NUM_THREADS=1 $(PY) benchmarks/finite_size.py $(BENCH_ARGS)
	$(PY) benchmarks/scaling.py $(BENCH_ARGS)

# Brian2 fails with numpy >= 2.4: it gets its own venv; benchmarks/particles.py runs its
# Brian2 part there (each target in a temporary folder: its standalone C++ project is
# built there and removed, nothing is left in the repository) and prints it side by side
# with fpsolver and the numpy loop.
bench-brian: install
	@test -x .venv-brian/bin/python || $$(scripts/find-python.sh) -m venv .venv-brian
	.venv-brian/bin/python -m pip install --quiet "numpy<2.4" brian2
	$(PY) benchmarks/particles.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) out build *.egg-info
