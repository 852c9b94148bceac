"""The fuzz targets (fuzz.targets): every input ``make fuzz`` once found replayed, and a short run of each.

tests/corpus/fuzz/<target>/ holds the inputs that broke a target before the fix named in
its test below; a replay that raises is the bug come back. The short runs (seconds, with
a lenient per-input timeout: CI's CPUs are shared) prove the harnesses still run; the long
run is ``make fuzz SECONDS=600``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.core.decoding.imaging import CorruptImage, decode_image
from app.core.inference.holder import ModelHolder
from app.core.settings import Settings
from app.http.factory import create_app
from app.http.work_queue import WorkQueue
from fuzz import targets
from fuzz.run import TARGETS
from scripts.invoke import LambdaContext
from tests.support import REPO

CORPUS = REPO / "tests" / "corpus" / "fuzz"
SHORT_RUN_S = 6
LENIENT_TIMEOUT_S = 20  # a hang in make fuzz is 2 s; here the CPUs are shared with the rest of the suite


def found(target: str) -> list[Path]:
    return sorted((CORPUS / target).glob("[!.]*"))


def build(target: str, tiny_model_path: Path, tiny_holder: ModelHolder,
          lambda_context: LambdaContext) -> targets.Target:
    segmenter = tiny_holder.get()
    if target == "decode":
        return targets.decode_target(segmenter)
    if target == "http_event":
        app = create_app(Settings(MODEL_URI=str(tiny_model_path)), tiny_holder, WorkQueue(workers=1, max_waiting=4))
        return targets.http_event_target(app, lambda_context)
    return targets.upload_event_target(segmenter, lambda_context)


@pytest.mark.parametrize(("target", "path"), [(target, path) for target in TARGETS for path in found(target)],
                         ids=lambda value: value.name if isinstance(value, Path) else value)
def test_found_inputs_are_handled(target: str, path: Path, tiny_model_path: Path, tiny_holder: ModelHolder,
                                  lambda_context: LambdaContext) -> None:
    build(target, tiny_model_path, tiny_holder, lambda_context)(path.read_bytes())


def test_every_target_has_a_corpus_folder() -> None:
    assert sorted(path.name for path in CORPUS.iterdir() if path.is_dir()) == sorted(TARGETS)


def upload_handler(tiny_holder: ModelHolder) -> Any:
    from app.aws.lambda_s3 import make_upload_handler
    from app.aws.s3_trigger import S3Trigger

    s3 = targets.MemoryS3(targets.small_png())
    return make_upload_handler(S3Trigger(lambda: s3, targets.LoadedModel(tiny_holder.get()), Settings()))


@pytest.mark.parametrize("name", ["s3_event/record-without-object-key.json", "batch_event/task-without-s3key.json"])
def test_malformed_upload_events_are_refused_not_retried(name: str, tiny_holder: ModelHolder,
                                                         lambda_context: LambdaContext) -> None:
    # Found by make fuzz: a KeyError out of the handler, so Lambda retried the event until the failure queue.
    result = upload_handler(tiny_holder)(json.loads((CORPUS / name).read_bytes()), lambda_context)
    assert (result["statusCode"], result["error"]) == (400, "UnsupportedEvent")


def test_an_http_event_mangum_cannot_read_is_a_400(tiny_model_path: Path, tiny_holder: ModelHolder,
                                                   lambda_context: LambdaContext) -> None:
    # Found by make fuzz: binascii.Error out of Mangum (API Gateway would have answered 502).
    from app.aws.lambda_http import make_http_handler

    app = create_app(Settings(MODEL_URI=str(tiny_model_path)), tiny_holder, WorkQueue(workers=1, max_waiting=4))
    event = json.loads((CORPUS / "http_event" / "body-not-base64.json").read_bytes())
    result = make_http_handler(app)(event, lambda_context)
    assert (result["statusCode"], result["headers"]) == (400, {"content-type": "application/json"})
    assert json.loads(result["body"])["detail"] == (
        "the request could not be read (Error): send a well-formed HTTP request")


@pytest.mark.slow
@pytest.mark.parametrize("target", TARGETS)
def test_a_short_fuzz_run_finds_nothing(target: str, tiny_model_path: Path, tmp_path: Path) -> None:
    command = [sys.executable, "-m", "fuzz.run", target, "--model", str(tiny_model_path), "--work", str(tmp_path),
               "--seconds", str(SHORT_RUN_S), "--timeout", str(LENIENT_TIMEOUT_S), "--no-corpus"]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Done " in done.stderr
    assert list((tmp_path / "crashes" / target).iterdir()) == []


def test_a_heif_whose_item_type_is_not_utf8_is_a_400_not_a_segfault() -> None:
    # Found by make fuzz: pi-heif 1.4.0 crashed the process (SIGSEGV) opening it; app.core.decoding.heif
    # refuses it first.
    data = (CORPUS / "decode" / "heif-item-type-not-utf8.heic").read_bytes()
    with pytest.raises(CorruptImage) as refused:
        decode_image(data, targets.FUZZ_LIMITS)
    assert refused.value.detail == "the HEIF file's item information is corrupt: send a valid image"


@pytest.mark.parametrize(
    ("data", "answer", "caught"),
    [
        (b'{"a": 1}', {"statusCode": 200}, False),
        (b'{"a": 1}', {"statusCode": 404}, False),  # a refusal is the service behaving
        (b'{"a": 1}', {"statusCode": 500}, True),  # a 500 is the bug the http_event target looks for
        (b'{"a": 1}', "not a dict", True),
        (b"\xff not json", {"statusCode": 500}, False),  # dropped: Lambda hands over parsed JSON only
    ],
)
def test_an_event_target_fails_on_what_breaks_the_contract(data: bytes, answer: Any, caught: bool) -> None:
    calls: list[Any] = []
    target = targets.event_target(lambda event, _: (calls.append(event), answer)[1], LambdaContext(),
                                  targets.status_under_500)
    if caught:
        with pytest.raises(AssertionError):
            target(data)
    else:
        target(data)
    assert calls == ([] if data.startswith(b"\xff") else [{"a": 1}])
