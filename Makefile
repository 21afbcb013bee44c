# One entry point for people and CI. `make bench` and `make test` set up .venv
# on first use (Python 3.11, the CPU build of torch) and then run.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
TORCH ?= torch==2.13.0
EXTRAS ?= bench,cluster,peers,t2i,dev
PYTEST_ARGS ?= -n 2

.PHONY: setup bench test lint notebooks clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet "$(TORCH)"
	$(BIN)/pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	# diffusion-mi (a benchmark peer) requires torchvision, which it never uses: skip its deps
	$(BIN)/pip install --quiet --no-deps diffusion-mi==0.1.0
	# gmm-mi (a peer on one-dimensional tasks) needs only numpy, scipy, scikit-learn and tqdm
	# to estimate; its declared plotting requirements (chainconsumer, pytest) are skipped
	$(BIN)/pip install --quiet --no-deps gmm_mi==0.8.2
	touch $@

bench: setup
	$(BIN)/miest-bench run --suite quick --jobs 2

test: setup
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(PYTEST_ARGS)

notebooks: setup
	$(BIN)/python notebooks/execute.py

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
