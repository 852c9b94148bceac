# The README's two commands are `make serve` and `make test`; `make help` lists the rest.
# Every verb that wraps a command passes ARGS through: make evaluate ARGS="--limit 50".
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000
# The served default (app.core.settings): the person model, int8; model/weights/unet.onnx is the fp32 model
# it was quantised from (model/weights/MODEL_CARD.md).
MODEL ?= model/weights/unet-int8.onnx
# Clothing Co-Parsing (model.ccp): the shared copy beside the checkout, or a clone of its repository.
CCP ?= ../shared/datasets/clothing-co-parsing
EVENT ?= events/http_api_get_root.json
STACK ?= unet-segmentation
PIP := $(PY) -m pip install --quiet --disable-pip-version-check

.PHONY: help serve serve-gpu serve-local gpu-check test check lint mutate bench data train train-person export evaluate ensemble quantize segment invoke \
	lambda-size lambda-memory publish-model build deploy clean fuzz api-fuzz load audit
.DEFAULT_GOAL := help

help:  ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'
	@echo "(torch): the verb installs torch, once: the CPU-only build where no NVIDIA GPU is found (TORCH_INDEX=URL to choose the index)."
	@echo "test, check, lint and the other dev verbs install everything, torch included; the rest never install torch."

# --- environments: one venv, created on first use, refreshed when a requirements file changes. One stamp per
# requirements file, so a verb installs what it runs: the AWS verbs never install torch, and only the verbs marked
# (torch) in make help and the dev verbs (test, check, lint, ...: everything) do.
# The service package `app` (function/app) is installed editable: one import path everywhere.
$(VENV)/.serve-installed: requirements-serve.txt function/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -r requirements-serve.txt
	$(PIP) --no-deps -e .
	touch $@

$(VENV)/.aws-installed: requirements-aws.txt $(VENV)/.serve-installed
	$(PIP) -r requirements-aws.txt
	touch $@

# PyPI's Linux torch is the multi-GB CUDA build. Where no NVIDIA GPU is found (no nvidia-smi), the torch line comes
# from PyTorch's CPU-only index, alone and --no-deps (its dependencies come from pip's own index on the next line).
# TORCH_INDEX=URL chooses the index, TORCH_INDEX= takes pip's own. Where download.pytorch.org does not answer (here:
# no DNS), pip tries it 3 times (--retries 2: ~1 s; pip's default 5 took ~8 s), then takes the same wheel from its
# find-links if it has one, or fails.
TORCH_INDEX ?= $(if $(shell command -v nvidia-smi 2>/dev/null),,https://download.pytorch.org/whl/cpu)
TORCH_PIN = $(shell grep -m1 -oE '^torch==[^ ]+' requirements-torch.txt)
$(VENV)/.torch-installed: requirements-torch.txt $(VENV)/.serve-installed
	$(PIP) --no-deps --retries 2 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) "$(TORCH_PIN)"
	$(PIP) -r requirements-torch.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.aws-installed $(VENV)/.torch-installed
	$(PIP) -r requirements-dev.txt
	touch $@

# onnxruntime's CUDA build in a venv of its own (it replaces the CPU build's module): make serve-gpu.
GPU_VENV ?= .venv-gpu
$(GPU_VENV)/.gpu-installed: requirements-serve.txt requirements-gpu.txt function/requirements.txt pyproject.toml
	test -x $(GPU_VENV)/bin/python || $(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-serve.txt
	$(GPU_VENV)/bin/python -m pip uninstall --quiet --yes onnxruntime
	$(GPU_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-gpu.txt
	$(GPU_VENV)/bin/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

# --- the README's two commands
serve: $(VENV)/.serve-installed  ## serve the bundled model on http://127.0.0.1:8000 (HOST=, PORT=, MODEL_URI=... to change)
	exec $(PY) -m uvicorn app.main:app --app-dir function --host $(HOST) --port $(PORT) $(ARGS)

serve-gpu: $(GPU_VENV)/.gpu-installed  ## serve on an NVIDIA GPU (docs/gpu.md): INFERENCE_PROVIDERS=cuda,cpu unless set
	INFERENCE_PROVIDERS=$${INFERENCE_PROVIDERS:-cuda,cpu} exec $(GPU_VENV)/bin/python -m uvicorn app.main:app --app-dir function --host $(HOST) --port $(PORT) $(ARGS)

gpu-check: $(GPU_VENV)/.gpu-installed  ## CUDA vs CPU: parity on 20 held-out images, model and 1080p times -> runs/gpu_check.json
	$(GPU_VENV)/bin/python -m scripts.gpu_check --out runs/gpu_check.json $(ARGS)

# make test and make check run pytest-xdist workers, one per CPU, each pinned to CPUs of its own (tests/conftest.py):
# about half the time on 2 cores. A module's tests stay on one worker, in file order (its fixtures are made once; the
# browser tests, collected last, run last). TEST_WORKERS=0: one process, as for a debugger.
TEST_WORKERS ?= $(shell nproc 2>/dev/null || echo 1)
XDIST = -n $(TEST_WORKERS) --dist loadscope --no-loadscope-reorder
# The tests type make themselves (make serve, make -n VERB): this run's ARGS and make's flags are not theirs.
test: $(VENV)/.dev-installed  ## the whole suite: unit, functional, integration, model, template, import contracts
	env -u ARGS -u MAKEFLAGS -u MFLAGS $(PY) -m pytest $(XDIST) $(ARGS)

# --- development
# The loop between edits (README, "Contributing"): seconds, not the whole suite's minutes; CI runs everything.
check: $(VENV)/.dev-installed  ## ruff, mypy, the import contracts and the fast tests (unit + functional, not slow)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(PY) -m pytest $(XDIST) tests/unit tests/functional -m "not slow" -q $(ARGS)

lint: $(VENV)/.dev-installed  ## ruff, mypy, the import-linter contracts (the layers), bandit over function/, hadolint on the Dockerfile
	$(VENV)/bin/ruff check . $(ARGS)
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(VENV)/bin/bandit -q -r function
	$(VENV)/bin/hadolint function/Dockerfile

# Mutation testing of the core and AWS packages (scripts/mutate.py says why in a workspace of its own);
# make test runs a one-module smoke of the same configuration (tests/deploy/test_mutation.py).
mutate: $(VENV)/.dev-installed  ## mutmut over the core and AWS modules -> docs/mutation.md (~30 min on 2 cores; ARGS=--retest after adding tests)
	$(PY) -m scripts.mutate $(ARGS)

bench: $(VENV)/.dev-installed  ## benchmarks -> bench/results.json and docs/benchmarks.md
	$(PY) -m bench.run $(ARGS)

data: $(VENV)/.torch-installed  ## (torch) Clothing Co-Parsing's fixed split as images/ + masks/ -> data/ccp/{train,val,test} (CCP=...)
	$(PY) -m model.ccp $(CCP) --out data/ccp $(ARGS)

train: $(VENV)/.torch-installed  ## (torch) train a UNet: make train ARGS="--data synthetic --out runs/mine" (README: a 1-minute recipe)
	$(PY) -m model.train $(ARGS)

train-person: $(VENV)/.torch-installed  ## (torch) the bundled person model as it was made, ~2 h on 2 cores: model/train_person.sh (CCP=...)
	CCP=$(CCP) PY=$(PY) bash model/train_person.sh

export: $(VENV)/.torch-installed  ## (torch) checkpoint -> ONNX: make export CKPT=runs/mine/best.pt OUT=runs/mine/unet.onnx ARGS="--name x --version 1.0.0"
	$(PY) -m model.export $(CKPT) $(OUT) $(ARGS)

evaluate: $(VENV)/.torch-installed  ## (torch) IoU/Dice of an ONNX model on photos at their size: make evaluate ARGS="--data data/ccp/test"
	$(PY) -m model.evaluate $(MODEL) $(ARGS)

ensemble: $(VENV)/.torch-installed  ## (torch) members and/or test-time flips as one ONNX graph: make ensemble ARGS="a.onnx b.onnx -o ens.onnx --tta hflip"
	$(PY) -m model.ensemble $(ARGS)

quantize: $(VENV)/.torch-installed  ## (torch) int8 model, kept only if it passes the gate: make quantize ARGS="model/weights/unet.onnx runs/int8.onnx --calibration-data data/ccp/train --gate-data data/ccp/test"
	$(PY) -m model.quantize $(ARGS)

# --- reliability (issue 12): each long run behind its own verb; make test runs a short one of each.
SECONDS ?= 600
fuzz: $(VENV)/.dev-installed  ## atheris over the decoder and the Lambda event parsers: make fuzz SECONDS=600 -> runs/fuzz/
	$(PY) -m fuzz.campaign --seconds $(SECONDS) $(ARGS)

EXAMPLES ?= 200
api-fuzz: $(VENV)/.dev-installed  ## Schemathesis on make serve's OpenAPI document, EXAMPLES per operation -> runs/api-fuzz/
	mkdir -p runs/api-fuzz
	API_FUZZ_EXAMPLES=$(EXAMPLES) API_FUZZ_REPORT=runs/api-fuzz $(PY) -m pytest tests/integration/test_api_schema.py -s --timeout=3600 $(ARGS)

# Needs PyPI's advisory data (pypi.org) reachable; --strict fails on any package it could not look up. Where pypi.org
# does not answer, pip-audit calls every package "not found on PyPI": scripts/pypi_advisories.py says what it is first.
audit: $(VENV)/.dev-installed  ## known vulnerabilities of the pinned runtime requirements (pip-audit; docs/security.md)
	@$(PY) -m scripts.pypi_advisories
	$(VENV)/bin/pip-audit -r function/requirements.txt --no-deps --disable-pip --strict --progress-spinner off $(ARGS)

LOAD_SECONDS ?= 60
load: $(VENV)/.dev-installed  ## Locust on a loopback server at 1x, 4x, 16x its workers, LOAD_SECONDS each -> runs/load/
	$(PY) -m bench.load --seconds $(LOAD_SECONDS) --out runs/load $(ARGS)

# --- files and folders on this machine (README: "Command line"). OUT defaults to runs/segment for this
# verb only (target-specific: `make export` keeps requiring its own OUT). make exits 2 whatever status
# unet-segment failed with (1: some inputs failed; 2: usage): scripts/exit_status.py says which, first.
segment: OUT ?= runs/segment
segment: $(VENV)/.serve-installed  ## segment files, folders, globs: make segment IN=photos OUT=out ARGS="--recursive --jobs 2"
	$(VENV)/bin/unet-segment $(IN) -o $(OUT) $(ARGS) || $(PY) -m scripts.exit_status unet-segment $$?

# --- AWS (docs/deploy.md). invoke and lambda-size need neither Docker nor an AWS account.
# make invoke: S3 events read and write moto on loopback; S3=aws uses your AWS configuration instead.
# make serve-local: the upload flow with nothing of AWS (scripts/serve_local.py says how the S3 event gets to the
# function). These five need moto, never torch: requirements-aws.txt.
serve-local: $(VENV)/.aws-installed  ## the upload flow on this machine: moto's S3, the API, the upload function on each upload (prints the URL; Ctrl-C stops)
	exec $(PY) -m scripts.serve_local $(ARGS)

S3 ?= local
invoke: $(VENV)/.aws-installed  ## a Lambda entry in-process with an event: make invoke EVENT=events/s3_put_upload.json IMAGE=photo.jpg
	$(PY) -m scripts.invoke $(EVENT) $(if $(filter local,$(S3)),--local-s3) $(if $(IMAGE),--image $(IMAGE)) $(ARGS)

lambda-size: $(VENV)/.aws-installed  ## the image's Python layer resolved for Lambda (cp312, manylinux x86_64)
	$(PY) -m scripts.lambda_size $(ARGS)

lambda-memory: $(VENV)/.aws-installed  ## peak RSS and latency per path and image size (template.yaml's MemorySize)
	$(PY) -m scripts.lambda_memory $(ARGS)

publish-model: $(VENV)/.aws-installed  ## upload $(MODEL) to the stack's bucket; prints the parameters to deploy with
	$(PY) -m scripts.publish_model --model $(MODEL) --stack $(STACK) $(ARGS)

build:  ## the container images (needs Docker and the SAM CLI)
	sam build $(ARGS)

deploy:  ## the first time: make deploy ARGS=--guided
	sam deploy --stack-name $(STACK) $(ARGS)

clean:  ## remove the venv, caches and generated outputs (runs/, bench/out/, test artefacts)
	rm -rf $(VENV) $(GPU_VENV) runs bench/out tests/_failures tests/_artifacts .pytest_cache .ruff_cache .mypy_cache .schemathesis \
		.import_linter_cache .aws-sam build *.egg-info function/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
