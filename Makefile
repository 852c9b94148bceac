# The README's two commands are `make serve` and `make test`; the rest are the verbs people expect.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
MODEL ?= model/weights/unet.onnx
EVENT ?= events/http_api_get_root.json
STACK ?= unet-segmentation

.PHONY: serve test lint bench train export evaluate quantize invoke build deploy publish-model lambda-size clean

# --- environments: one venv, created on first use, refreshed when a requirements file changes
$(VENV)/.serve-installed: requirements-serve.txt function/requirements.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-serve.txt
	touch $@

$(VENV)/.dev-installed: requirements-dev.txt $(VENV)/.serve-installed
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# --- the README's two commands
serve: $(VENV)/.serve-installed  ## serve the bundled model on http://127.0.0.1:$(PORT)
	cd function && exec ../$(PY) -m uvicorn app.main:app --host 127.0.0.1 --port $(PORT)

test: $(VENV)/.dev-installed  ## the whole suite: unit, functional, integration, model, template
	$(PY) -m pytest

# --- development
lint: $(VENV)/.dev-installed
	$(PY) -m ruff check .
	$(PY) -m mypy

bench: $(VENV)/.dev-installed  ## benchmarks -> bench/results.json and docs/benchmarks.md
	$(PY) -m bench.run

train: $(VENV)/.dev-installed  ## e.g. make train ARGS="--data synthetic --epochs 20 --out runs/mine"
	$(PY) -m model.train $(ARGS)

export: $(VENV)/.dev-installed  ## make export CKPT=runs/mine/best.pt OUT=runs/mine/unet.onnx
	$(PY) -m model.export $(CKPT) $(OUT)

evaluate: $(VENV)/.dev-installed  ## held-out IoU/Dice of an ONNX model
	$(PY) -m model.evaluate $(MODEL)

quantize: $(VENV)/.dev-installed  ## int8 model, kept only if it passes the accuracy gate: make quantize ARGS="model/weights/unet.onnx model/weights/unet-int8.onnx"
	$(PY) -m model.quantize $(ARGS)

# --- AWS (docs/deploy.md). invoke and lambda-size need neither Docker nor an AWS account.
.PHONY: lambda-memory
# make invoke: S3 events read and write moto on loopback; S3=aws uses your AWS configuration instead.
S3 ?= local
invoke: $(VENV)/.dev-installed  ## run app.main.handler in-process: make invoke EVENT=events/s3_put_upload.json
	$(PY) -m scripts.invoke $(EVENT) $(if $(filter local,$(S3)),--local-s3)

lambda-size: $(VENV)/.dev-installed  ## the image's Python layer resolved for Lambda (cp312, manylinux x86_64)
	$(PY) -m scripts.lambda_size

lambda-memory: $(VENV)/.dev-installed  ## peak RSS and latency per path and image size (template.yaml's MemorySize)
	$(PY) -m scripts.lambda_memory

publish-model: $(VENV)/.dev-installed  ## upload $(MODEL) to the stack's bucket; prints the parameters to deploy with
	$(PY) -m scripts.publish_model --model $(MODEL) --stack $(STACK) $(ARGS)

build:  ## the container images (needs Docker and the SAM CLI)
	sam build

deploy:  ## the first time: sam deploy --guided
	sam deploy --stack-name $(STACK)
