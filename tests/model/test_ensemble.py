"""Ensembles and test-time flips: one ONNX graph that equals its members averaged, with a single model's contract."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from model.ensemble import EPS, main, normalise_weights, shared_descriptions
from model.evaluate import HeldoutScore, evaluate, heldout_batches, predict_masks
from model.export import main as export_main
from model.metadata import build_metadata
from model.preprocessing import Preprocessing
from model.train import main as train_main

log = logging.getLogger(__name__)

PREP = Preprocessing(height=64, width=64)
TINY_TRAINING = [
    *("--image-size", "64", "--base-width", "4", "--train-size", "32", "--val-size", "8"),
    *("--batch-size", "8", "--workers", "0", "--device", "cpu", "--epochs", "3"),  # 12 steps
]
MEMBER_SEEDS = (10, 20, 30)
HELDOUT_IMAGES = 64  # the fixed held-out batch the three-member test scores on
MAX_LOGIT_DIFF = 1e-4
CLIPPED_LOGIT = float(np.log((1 - EPS) / EPS))  # 16.118: where the ensemble's logits stop

Flip = Callable[[np.ndarray], np.ndarray]
# The views as the issue defines them, written independently of model.ensemble (NCHW: -1 is left-right).
REFERENCE_VIEWS: dict[str, list[Flip]] = {
    "none": [lambda a: a],
    "hflip": [lambda a: a, lambda a: a[..., ::-1]],
    "flips": [lambda a: a, lambda a: a[..., ::-1], lambda a: a[..., ::-1, :], lambda a: a[..., ::-1, ::-1]],
}


@pytest.fixture(scope="module")
def trained_members(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Three 4-wide UNets at 64x64, differently seeded, trained for 12 steps and exported (parity verified)."""
    out = tmp_path_factory.mktemp("members")
    for seed in MEMBER_SEEDS:
        train_main([*TINY_TRAINING, "--seed", str(seed), "--out", str(out / f"seed{seed}")])
        export_main([str(out / f"seed{seed}" / "best.pt"), str(out / f"seed{seed}.onnx"), "--name", f"tiny-{seed}"])
    return [out / f"seed{seed}.onnx" for seed in MEMBER_SEEDS]


@pytest.fixture(scope="module")
def saturating_member(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer member (a 1x1 Conv with large weights, built with onnx.helper): logits of +-100 on real
    images, most far past the +-16.12 clip, where float32 sigmoids are exactly 0 or 1."""
    weight = onnx.numpy_helper.from_array(np.array([30, -30, 10], np.float32).reshape(1, 3, 1, 1), "weight")
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("Conv", ["image", "weight"], ["logits"])],
        "loud",
        [onnx.helper.make_tensor_value_info("image", onnx.TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", 1, 64, 64])],
        initializer=[weight],
    )
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    identity = {"model_name": "loud", "model_version": "0.0.1", "training_data": "none"}
    onnx.helper.set_model_props(model, build_metadata(PREP, identity, {}))
    path = tmp_path_factory.mktemp("loud") / "loud.onnx"
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def heldout() -> tuple[np.ndarray, np.ndarray]:
    """The first HELDOUT_IMAGES held-out images at 64x64: normalised inputs and boolean masks."""
    return next(heldout_batches(PREP, HELDOUT_IMAGES, HELDOUT_IMAGES))


def build(members: list[Path], out: Path, *options: str) -> Path:
    main([*map(str, members), "-o", str(out), *options])
    return out


def run(path: Path, images: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"image": np.ascontiguousarray(images)})[0]


def metadata_of(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path)).metadata_props}


def reference_logits(members: list[Path], weights: list[float], tta: str, images: np.ndarray) -> np.ndarray:
    """The definition, in float64 numpy: each member alone in onnxruntime on each mirrored view, mirrored
    back, sigmoid, weighted mean over members and views, clipped to [eps, 1 - eps], logit."""
    views = REFERENCE_VIEWS[tta]
    probability = np.zeros((len(images), 1, *images.shape[2:]))
    for member, weight in zip(members, weights, strict=True):
        for flip in views:
            logits = flip(run(member, flip(images))).astype(np.float64)
            probability += weight / sum(weights) / len(views) / (1 + np.exp(-logits))
    probability = np.clip(probability, EPS, 1 - EPS)
    return np.log(probability) - np.log1p(-probability)


# --- the graph computes the definition


@pytest.mark.parametrize("weights", [[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]])
@pytest.mark.parametrize("tta", ["none", "hflip", "flips"])
def test_ensemble_equals_its_members_averaged_in_numpy(
    trained_members: list[Path], heldout: tuple[np.ndarray, np.ndarray], tmp_path: Path, tta: str, weights: list[float]
) -> None:
    path = build(trained_members, tmp_path / "e.onnx", "--tta", tta, "--weights", *map(str, weights))
    for batch in (1, 3):  # dynamic batch: the views multiply it inside the graph
        images = heldout[0][:batch]
        actual, expected = run(path, images), reference_logits(trained_members, weights, tta, images)
        assert actual.shape == (batch, 1, 64, 64)
        difference = np.abs(actual - expected).max()
        log.info("tta %s weights %s batch %d: max |logit diff| %.2e", tta, weights, batch, difference)
        np.testing.assert_allclose(actual, expected, atol=MAX_LOGIT_DIFF, rtol=0)


@pytest.mark.parametrize("tta", ["none", "hflip", "flips"])
def test_parity_holds_through_saturation(
    saturating_member: Path, heldout: tuple[np.ndarray, np.ndarray], tmp_path: Path, tta: str
) -> None:
    # GIVEN a member whose logits reach +-100 (probabilities of exactly 0 and 1 in float32)
    path = build([saturating_member], tmp_path / "e.onnx", "--tta", tta)
    images = heldout[0][:3]
    expected = reference_logits([saturating_member], [1.0], tta, images)
    assert np.mean(np.abs(expected) > CLIPPED_LOGIT - 1e-3) > 0.3  # most pixels sit on the clip
    # THEN the ensemble's logits are finite and within 1e-4 everywhere, on the clip and below it
    actual = run(path, images)
    log.info("saturating, tta %s: max |logit diff| %.2e", tta, np.abs(actual - expected).max())
    assert np.isfinite(actual).all() and np.abs(actual).max() <= CLIPPED_LOGIT + 1e-4
    np.testing.assert_allclose(actual, expected, atol=MAX_LOGIT_DIFF, rtol=0)


@pytest.mark.parametrize("chosen", [0, 2])
def test_a_weight_of_one_and_zeros_is_that_member_alone(
    trained_members: list[Path], heldout: tuple[np.ndarray, np.ndarray], tmp_path: Path, chosen: int
) -> None:
    weights = ["0", "0", "0"]
    weights[chosen] = "5"
    path = build(trained_members, tmp_path / "e.onnx", "--weights", *weights)
    images = heldout[0][:3]
    np.testing.assert_allclose(run(path, images), run(trained_members[chosen], images), atol=MAX_LOGIT_DIFF, rtol=0)


@pytest.mark.parametrize(
    ("tta", "mirrors_exactly"),
    [("none", {"left-right": False, "up-down": False}), ("hflip", {"left-right": True, "up-down": False}),
     ("flips", {"left-right": True, "up-down": True})],
)
def test_flipped_predictions_are_flipped_back(
    trained_members: list[Path],
    heldout: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    tta: str,
    mirrors_exactly: dict[str, bool],
) -> None:
    # GIVEN an ensemble, an image and its mirror
    path = build(trained_members, tmp_path / "e.onnx", "--tta", tta)
    images = heldout[0][:2]
    mirrors = {"left-right": REFERENCE_VIEWS["flips"][1], "up-down": REFERENCE_VIEWS["flips"][2]}
    for name, mirror in mirrors.items():
        # WHEN both are predicted THEN the mirror's prediction is the prediction mirrored, exactly where the
        # views include that mirror (and the members themselves are not symmetric, so elsewhere it is not)
        difference = np.abs(run(path, mirror(images)) - mirror(run(path, images))).max()
        assert bool(difference <= 1e-5) is mirrors_exactly[name], f"{name}: {difference:.2e}"


def test_each_member_runs_once_whatever_the_views(trained_members: list[Path], tmp_path: Path) -> None:
    member_convs = sum(
        sum(node.op_type == "Conv" for node in onnx.load(str(m)).graph.node) for m in trained_members
    )
    graph = onnx.load(str(build(trained_members, tmp_path / "e.onnx", "--tta", "flips"))).graph
    assert sum(node.op_type == "Conv" for node in graph.node) == member_convs  # views ride on the batch axis


# --- the three-member ensemble beats its members


def test_three_trained_members_ensemble_at_least_as_well_as_the_best(
    trained_members: list[Path], heldout: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    def iou(path: Path) -> float:
        score = HeldoutScore()
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        score.add(predict_masks(session, heldout[0]), heldout[1])
        return score.result()["iou"]

    members = [iou(path) for path in trained_members]
    ensembles = {tta: iou(build(trained_members, tmp_path / f"{tta}.onnx", "--tta", tta)) for tta in REFERENCE_VIEWS}
    log.info("held-out IoU on %d images: members %s, ensemble %s", HELDOUT_IMAGES, members, ensembles)
    assert ensembles["none"] >= max(members)


# --- metadata: a single model's contract, the members, the TTA mode, its own metrics


def test_metadata_keeps_the_contract_and_records_members(trained_members: list[Path], tmp_path: Path) -> None:
    path = build(trained_members, tmp_path / "e.onnx", "--weights", "2", "1", "1", "--tta", "hflip",
                 "--name", "tiny-ensemble", "--version", "1.2.3")
    metadata, member = metadata_of(path), metadata_of(trained_members[0])
    # each member's own training recipe stays in its file (they differ by seed); shared descriptions carry over
    assert set(metadata) == set(member) - {"training"} | {"ensemble_members", "tta"}
    contract = ("input_height", "input_width", "channel_order", "resize", "scale", "mean", "std", "layout", "threshold")
    assert {key: metadata[key] for key in contract} == {key: member[key] for key in contract}
    assert (metadata["model_name"], metadata["model_version"], metadata["tta"]) == ("tiny-ensemble", "1.2.3", "hflip")
    assert json.loads(metadata["metrics"]) == {}  # never a member's: only its own, when evaluated
    assert json.loads(metadata["ensemble_members"]) == [
        {"file": p.name, "name": f"tiny-{seed}", "version": "0.0.0",
         "sha256": hashlib.sha256(p.read_bytes()).hexdigest(), "weight": weight}
        for p, seed, weight in zip(trained_members, MEMBER_SEEDS, [0.5, 0.25, 0.25], strict=True)
    ]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("image", ["batch", 3, 64, 64])]
    assert [(o.name, o.shape) for o in session.get_outputs()] == [("logits", ["batch", 1, 64, 64])]


def test_evaluate_scores_an_ensemble_and_the_score_is_written_in(trained_members: list[Path], tmp_path: Path) -> None:
    path = build(trained_members, tmp_path / "e.onnx", "--tta", "flips", "--evaluate", "8")
    recorded = json.loads(metadata_of(path)["metrics"])
    result = evaluate(path, 8)  # model.evaluate runs it as it runs a single model
    assert recorded == {"held_out": {key: result[key] for key in ("iou", "dice", "mean_image_iou", "images")}}
    assert 0.0 < recorded["held_out"]["iou"] <= 1.0 and recorded["held_out"]["images"] == 8


# --- refusals: exit status 2 with a message that says what to fix


@pytest.mark.parametrize(
    ("weights", "count"), [(None, 3), ([2.0, 1.0, 1.0], 3), ([0.0, 3.0], 2), ([1e-3], 1)]
)
def test_weights_are_normalised(weights: list[float] | None, count: int) -> None:
    normalised = normalise_weights(weights, count)
    expected = [1 / count] * count if weights is None else [w / sum(weights) for w in weights]
    assert normalised == pytest.approx(expected) and sum(normalised) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("weights", "message"),
    [(["1", "-1", "1"], "non-negative"), (["0", "0", "0"], "positive sum"), (["1", "1"], "2 weights for 3 members")],
)
def test_bad_weights_are_a_usage_error(
    tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], weights: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build([tiny_model_path] * 3, tmp_path / "e.onnx", "--weights", *weights)
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_an_unknown_tta_mode_is_a_usage_error(tiny_model_path: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build([tiny_model_path], tmp_path / "e.onnx", "--tta", "rotate")
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("member", "message"),
    [("absent.onnx", "member {path}: No such file or directory: give the .onnx files model.export wrote"),
     ("folder", "member {path}: Is a directory: give the .onnx files model.export wrote"),
     ("notes.onnx", "member {path} is not an ONNX model: give the .onnx files model.export wrote")],
    ids=["missing", "folder", "not-onnx"],
)
def test_a_member_that_is_not_a_model_file_is_a_usage_error_naming_it(
    tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], member: str, message: str
) -> None:
    # GIVEN a missing file, a folder and a text file named as members (issue 23: a traceback, before)
    (tmp_path / "folder").mkdir()
    (tmp_path / "notes.onnx").write_text("not a model")
    with pytest.raises(SystemExit) as exit_info:
        build([tiny_model_path, tmp_path / member], tmp_path / "e.onnx", "--tta", "hflip")
    # THEN exit status 2 and the last line of stderr names it, with what to give instead
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert exit_info.value.code == 2 and last_line.endswith(f": error: {message.format(path=tmp_path / member)}")
    assert not (tmp_path / "e.onnx").exists()


def with_metadata(source: Path, out: Path, **changes: str) -> Path:
    model = onnx.load(str(source))
    onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props}, **changes})
    onnx.save(model, str(out))
    return out


@pytest.mark.parametrize(
    ("key", "value"),
    [("input_height", "48"), ("input_width", "80"), ("channel_order", "BGR"), ("resize", "nearest"),
     ("scale", "1.0"), ("mean", "[0.5, 0.5, 0.5]"), ("std", "[0.5, 0.5, 0.5]"), ("layout", "NHWC"),
     ("threshold", "0.7")],
)
def test_members_that_disagree_on_the_contract_are_refused(
    tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: str
) -> None:
    other = with_metadata(tiny_model_path, tmp_path / "other.onnx", **{key: value})
    with pytest.raises(SystemExit) as exit_info:
        build([tiny_model_path, other], tmp_path / "e.onnx")
    assert exit_info.value.code == 2 and f"disagree on '{key}'" in capsys.readouterr().err
    assert not (tmp_path / "e.onnx").exists()


def test_the_same_numbers_written_differently_agree(tiny_model_path: Path, tmp_path: Path) -> None:
    # GIVEN the same mean and scale without spaces and with a trailing zero THEN they are one contract
    changes = {"mean": "[0.485,0.456,0.406]", "scale": "0.003921568627450980"}
    other = with_metadata(tiny_model_path, tmp_path / "b.onnx", **changes)
    built = build([tiny_model_path, other], tmp_path / "e.onnx")
    assert json.loads(metadata_of(built)["mean"]) == [0.485, 0.456, 0.406]


def test_members_with_other_graph_names_are_refused(
    tiny_model_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a member whose input and output are called x/image and x/logits
    other = tmp_path / "other.onnx"
    onnx.save(onnx.compose.add_prefix(onnx.load(str(tiny_model_path)), "x/"), str(other))
    with pytest.raises(SystemExit) as exit_info:
        build([tiny_model_path, other], tmp_path / "e.onnx")
    assert exit_info.value.code == 2 and "disagree on 'input name'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("members", "expected"),
    [
        ([{"task": "people", "training": "a"}, {"task": "people", "training": "b"}], {"task": "people"}),
        ([{"task": "people", "license": "MIT"}, {"task": "people"}], {"task": "people"}),
        ([{"task": "people"}], {"task": "people"}),
        ([{"model_name": "x"}, {"model_name": "x"}], {}),  # identity is the ensemble's own, not a description
    ],
)
def test_only_descriptions_every_member_shares_carry_over(members: list[dict[str, str]],
                                                          expected: dict[str, str]) -> None:
    assert shared_descriptions(members) == expected
