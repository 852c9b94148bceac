"""app.core.inference.segmenter: preprocessing identical to training, mask geometry, thresholds, metadata, threads."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from PIL import Image, ImageCms

from app.core.inference.contract import InvalidModel
from app.core.inference.segmenter import Segmenter, open_session, sigmoid, upsample_mask, upsample_probabilities
from app.core.resources import bands
from app.core.resources.cpus import usable_cpus
from tests.samples import DISPLAY_P3_ICC
from tests.support import noise


@pytest.fixture(scope="module")
def tiny(tiny_model_path: Path) -> Segmenter:
    return Segmenter(tiny_model_path, "0" * 64)


def test_preprocessing_is_bit_identical_to_training(tiny: Segmenter) -> None:
    # GIVEN the training side's own preprocessing (torch is a test dependency, never a runtime one)
    from model.preprocessing import Preprocessing

    prep = Preprocessing(height=64, width=64)
    for image in (noise(300, 200), noise(17, 513, seed=1), Image.new("L", (40, 40), 90)):
        # WHEN both sides prepare the same image THEN the model sees the same numbers
        assert np.array_equal(tiny.preprocess(image), prep.image_to_input(image))


def tagged(image: Image.Image, profile: bytes) -> Image.Image:
    image.info["icc_profile"] = profile
    return image


def test_the_model_sees_display_p3_converted_to_srgb(tiny: Segmenter) -> None:
    # GIVEN a Display P3 photo (as an iPhone's), and the training side's preprocessing of sRGB pixels
    from model.preprocessing import Preprocessing

    p3 = ImageCms.ImageCmsProfile(io.BytesIO(DISPLAY_P3_ICC))
    srgb = ImageCms.createProfile("sRGB")
    image = tagged(noise(300, 200, seed=4), DISPLAY_P3_ICC)
    small = image.resize((64, 64), Image.Resampling.BILINEAR)
    in_srgb = ImageCms.profileToProfile(small, p3, srgb, renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    # WHEN the segmenter prepares it THEN the model gets the sRGB conversion of what it is shown, not P3 values
    model_input = tiny.preprocess(image)
    assert np.array_equal(model_input, Preprocessing(height=64, width=64).image_to_input(in_srgb))
    assert not np.array_equal(model_input, tiny.preprocess(noise(300, 200, seed=4)))


def test_an_srgb_profile_changes_nothing(tiny: Segmenter) -> None:
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    image = noise(90, 70, seed=5)
    assert np.array_equal(tiny.preprocess(tagged(image.copy(), srgb)), tiny.preprocess(image))


@pytest.mark.parametrize(("width", "height"), [(1, 1), (64, 64), (3, 517), (517, 3), (1001, 999), (63, 65)])
def test_mask_has_the_image_size(tiny: Segmenter, width: int, height: int) -> None:
    mask = tiny.segment(noise(width, height)).mask
    assert (mask.shape, mask.dtype) == ((height, width), np.dtype(bool))


def test_segment_reports_each_stage(tiny: Segmenter) -> None:
    prediction = tiny.segment(noise(80, 60))
    assert list(prediction.timings_ms) == ["resize", "infer", "upsample"]
    assert all(ms >= 0 for ms in prediction.timings_ms.values())
    assert np.array_equal(prediction.mask, tiny.segment(noise(80, 60)).mask)  # deterministic


class RunsRecorded:
    """A session that records each run's arena shrinkage setting (None: no run options) and runs it."""

    def __init__(self, session: ort.InferenceSession) -> None:
        self.session, self.shrinkage = session, []

    def run(self, outputs: list[str], feeds: dict[str, np.ndarray], run_options: ort.RunOptions | None = None) -> list:
        self.shrinkage.append(run_options and run_options.get_run_config_entry("memory.enable_memory_arena_shrinkage"))
        return self.session.run(outputs, feeds, run_options)


@pytest.mark.parametrize(("size", "shrinkage"), [
    ((1920, 1080), None),  # 1080p: the arena stays for the next request
    ((2000, 2000), None),  # KEEP_FREED_UP_TO_PIXELS exactly
    ((2000, 2001), "cpu:0"),
    ((4000, 3000), "cpu:0"),  # a 12 MP photo: the arena is given back before its upsample, drawing and encoding
])
def test_a_large_images_inference_gives_the_models_working_memory_back(
        tiny_model_path: Path, size: tuple[int, int], shrinkage: str | None) -> None:
    segmenter = Segmenter(tiny_model_path, "0" * 64)
    recorded = RunsRecorded(segmenter._session)
    segmenter._session = recorded  # type: ignore[assignment]
    mask = segmenter.segment_input(segmenter.preprocess(noise(64, 48)), size).mask
    assert recorded.shrinkage == [shrinkage]
    assert mask.shape == size[::-1]


def test_lower_threshold_never_removes_foreground(tiny: Segmenter) -> None:
    image = noise(120, 90, seed=3)
    masks = [tiny.segment(image, threshold).mask for threshold in (0.05, 0.3, 0.5, 0.7, 0.95)]
    for looser, stricter in zip(masks, masks[1:], strict=False):
        assert np.all(looser | ~stricter)  # stricter implies looser
    assert np.array_equal(tiny.segment(image).mask, tiny.segment(image, 0.5).mask)  # the metadata's threshold is 0.5


def test_model_info_comes_from_the_metadata(tiny: Segmenter) -> None:
    info = tiny.info
    assert (info.name, info.version, info.sha256) == ("tiny-test-unet", "0.0.1", "0" * 64)
    assert (info.input_height, info.input_width, info.threshold, info.metrics) == (64, 64, 0.5, {})


def test_threads_default_to_the_usable_cpus(tiny_model_path: Path) -> None:
    assert Segmenter(tiny_model_path, "x").threads == usable_cpus()
    assert Segmenter(tiny_model_path, "x", threads=1).threads == 1


def test_the_session_uses_the_threads_given_never_spins_and_plans_no_memory_pattern(tiny_model_path: Path) -> None:
    session = open_session(tiny_model_path, threads=3)
    options = session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads, options.execution_mode,
            options.enable_mem_pattern) == (3, 1, ort.ExecutionMode.ORT_SEQUENTIAL, False)
    assert [options.get_session_config_entry(f"session.{pool}.allow_spinning") for pool in ("intra_op", "inter_op")] \
        == ["0", "0"]
    assert session.get_providers() == ["CPUExecutionProvider"]


# onnxruntime's CPU wheel also has Azure's provider: a second provider to see that the list given is the one used
# (left out, onnxruntime would use its default, the CPU's alone)
AZURE_THEN_CPU = [("AzureExecutionProvider", {}), ("CPUExecutionProvider", {})]


def test_the_session_and_the_segmenter_use_the_providers_given(tiny_model_path: Path) -> None:
    assert "AzureExecutionProvider" in ort.get_available_providers(), "this test needs a second provider"
    providers = ["AzureExecutionProvider", "CPUExecutionProvider"]
    assert open_session(tiny_model_path, 1, AZURE_THEN_CPU).get_providers() == providers
    assert Segmenter(tiny_model_path, "x", providers=AZURE_THEN_CPU).provider == "AzureExecutionProvider"


def with_outputs(source: Path, target: Path, negated_first: bool) -> Path:
    """The model with its output renamed "scores", or with a first output "negated" (-logits) before "logits"."""
    model = onnx.load(str(source))
    logits = model.graph.output[0]
    if negated_first:
        model.graph.node.append(onnx.helper.make_node("Neg", [logits.name], ["negated"]))
        negated = onnx.helper.make_tensor_value_info("negated", logits.type.tensor_type.elem_type, None)
        model.graph.output.insert(0, negated)
    else:
        for node in model.graph.node:
            node.output[:] = ["scores" if name == logits.name else name for name in node.output]
        logits.name = "scores"
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize("negated_first", [False, True], ids=["output-named-otherwise", "logits-second"])
def test_the_logits_output_is_found_by_name_else_the_first_is_used(
    tiny: Segmenter, tiny_model_path: Path, tmp_path: Path, negated_first: bool
) -> None:
    changed = Segmenter(with_outputs(tiny_model_path, tmp_path / "changed.onnx", negated_first), "x")
    image = noise(30, 20)
    np.testing.assert_array_equal(changed.segment(image).mask, tiny.segment(image).mask)


# --- upsampling and the sigmoid, on logits we choose ------------------------------------------


def test_upsampled_mask_edge_lands_in_the_middle() -> None:
    # GIVEN a model-size logit map whose right half is foreground
    logits = np.full((4, 4), -6.0, dtype=np.float32)
    logits[:, 2:] = 6.0
    # WHEN upsampled to 100 x 10
    mask = upsample_mask(logits, (100, 10), 0.5)
    # THEN the left half is background and the right half foreground, on every row
    assert mask.shape == (10, 100)
    assert not mask[:, :50].any() and mask[:, 50:].all()


def test_upsampling_is_pillows_bilinear_resize_of_the_probabilities() -> None:
    logits = np.random.default_rng(3).uniform(-4, 4, (8, 8)).astype(np.float32)
    probabilities = (1.0 / (1.0 + np.exp(-logits.astype(np.float64)))).astype(np.float32)
    expected = np.asarray(Image.fromarray(probabilities).resize((50, 30), Image.Resampling.BILINEAR)) >= 0.5
    assert 0.2 < expected.mean() < 0.8
    np.testing.assert_array_equal(upsample_mask(logits, (50, 30), 0.5), expected)


@pytest.mark.parametrize("threshold", [0.01, 0.3, 0.5, 0.77, 0.99])
@pytest.mark.parametrize("size", [(50, 30), (333, 777), (1920, 1080)])
def test_the_mask_is_the_float_resize_thresholded_at_any_threshold(threshold: float, size: tuple[int, int]) -> None:
    """Thresholded inside Pillow (``threshold_shifted``): a pixel may differ from the float resize's comparison
    only where the resized probability is within float rounding (1e-6) of the threshold."""
    logits = np.random.default_rng(7).uniform(-6, 6, (16, 16)).astype(np.float32)
    probabilities = sigmoid(logits)
    resized = np.asarray(Image.fromarray(probabilities).resize(size, Image.Resampling.BILINEAR))
    mask = upsample_mask(logits, size, threshold)
    differing = mask != (resized >= threshold)
    assert np.all(np.abs(resized[differing] - threshold) < 1e-6)
    assert differing.sum() <= 2 and 0 < mask.sum() < mask.size


def test_a_tall_mask_is_upsampled_band_by_band_from_the_whole_source(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN logits whose top half is foreground WHEN upsampled to 600 rows (three bands of 256 rows)
    monkeypatch.setattr(bands, "BAND_PIXELS", 256 * 10)
    logits = np.full((4, 4), -6.0, dtype=np.float32)
    logits[:2] = 6.0
    mask = upsample_mask(logits, (10, 600), 0.5)
    # THEN the edge lies across the middle once, not once in every band
    assert mask.shape == (600, 10) and mask[:290].all() and not mask[310:].any()


@pytest.mark.parametrize(("probability", "expected"), [(1.7, True), (-0.4, False), (float("nan"), False),
                                                     (float("inf"), True)])
def test_probabilities_out_of_range_give_a_valid_mask(probability: float, expected: bool) -> None:
    """A caller's probabilities outside [0, 1] (offline scoring passes its own) still give bools of 0 or 1."""
    mask = upsample_probabilities(np.full((4, 4), probability, dtype=np.float32), (9, 7), 0.5)
    assert set(np.unique(mask.view(np.uint8)).tolist()) == {int(expected)}


@pytest.mark.parametrize(("value", "expected"), [(8.0, True), (-8.0, False)])
def test_uniform_logits_give_uniform_masks(value: float, expected: bool) -> None:
    mask = upsample_mask(np.full((4, 4), value, dtype=np.float32), (7, 5), 0.5)
    assert mask.shape == (5, 7) and np.all(mask == expected)


def test_sigmoid_is_stable_for_extreme_logits() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would raise here
        values = sigmoid(np.array([-1000.0, -200.0, 0.0, 200.0, 1000.0], dtype=np.float32))
    assert values.dtype == np.float32
    assert values.tolist() == [0.0, 0.0, 0.5, 1.0, 1.0]
    moderate = np.array([-3.0, -1.0, 1.0, 3.0], dtype=np.float32)
    np.testing.assert_allclose(sigmoid(moderate), 1.0 / (1.0 + np.exp(-moderate.astype(np.float64))), rtol=1e-6)


# --- models this server must refuse ------------------------------------------------------------


def with_metadata(source: Path, target: Path, changes: dict[str, str | None]) -> Path:
    model = onnx.load(str(source))
    props = {p.key: p.value for p in model.metadata_props}
    for key, value in changes.items():
        props.pop(key) if value is None else props.__setitem__(key, value)
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, str(target))
    return target


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input_height": None}, "no 'input_height' key"),
        ({"mean": "[0.5, 0.5]"}, "malformed"),
        ({"resize": "nearest"}, "resize is 'nearest'"),
        ({"layout": "NHWC"}, "layout is 'NHWC'"),
        ({"threshold": "1.5"}, "threshold 1.5 is outside"),
        ({"std": json.dumps([0.2, 0.0, 0.2])}, "non-positive"),
        ({"input_height": "128"}, "does not match its metadata"),  # the graph says 64
    ],
)
def test_models_with_unusable_metadata_are_refused(
    tiny_model_path: Path, tmp_path: Path, changes: dict[str, str | None], message: str
) -> None:
    path = with_metadata(tiny_model_path, tmp_path / "changed.onnx", changes)
    with pytest.raises(InvalidModel, match=message):
        Segmenter(path, "x")


def test_bgr_models_see_the_channels_reversed(tiny_model_path: Path, tmp_path: Path) -> None:
    # GIVEN the same model declared BGR, and an image with its channels swapped
    bgr = Segmenter(with_metadata(tiny_model_path, tmp_path / "bgr.onnx", {"channel_order": "BGR"}), "x")
    rgb = Segmenter(tiny_model_path, "x")
    image = noise(20, 20)
    swapped = Image.fromarray(np.ascontiguousarray(np.asarray(image)[..., ::-1]))
    # THEN the BGR model's input for the image is the RGB model's input for the swapped image
    assert np.array_equal(bgr.preprocess(image), rgb.preprocess(swapped))
