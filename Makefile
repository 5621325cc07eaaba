# Two commands set everything up on a fresh machine:
#   make demo   build .venv, install, fetch Fashion-MNIST, run the main job
#   make test   build .venv, install, run ruff and pytest
VENV    ?= .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.revact-installed
# torch/torchvision are pinned to the releases this machine serves from local disk.
TORCH   := torch==2.14.1 torchvision==0.29.1

.PHONY: test demo install lint clean

install: $(STAMP)

# No build isolation: the native CPU kernels (setup.py) compile against the torch of .venv.
$(STAMP): pyproject.toml setup.py $(wildcard src/revact/csrc/*)
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 'setuptools>=77'
	$(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q --no-build-isolation -e '.[dev]'
	touch $(STAMP)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Two workers, a test file each: most of the time goes to single-threaded trainings in
# subprocesses (one file's module-scoped fixtures, e.g. a trained YOLO, stay in one worker).
test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

# The fetch step installs the Debian package when it can; when it cannot, it says how to get
# the data, and `revact compare` still finds a --data-dir, $$REVACT_DATA_DIR or ~/.cache copy.
demo: $(STAMP)
	-scripts/fetch-fashion-mnist.sh
	$(VENV)/bin/revact compare --out runs/compare

clean:
	rm -rf $(VENV) runs .pytest_cache
