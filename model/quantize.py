"""Quantise an exported model to int8, and keep it only if it is as accurate as the float model.

    python -m model.quantize model/weights/unet.onnx runs/unet-int8.onnx \
        --calibration-data data/ccp/train --gate-data data/ccp/test          # the bundled person model
    python -m model.quantize runs/ref/unet.onnx runs/ref/unet-int8.onnx     # generated frames

With ``--calibration-data`` (a folder of ``images/``, e.g. the training part of ``model.ccp``'s
split), the calibration frames are photos from it, evenly spread; with ``--gate-data``
(``images/`` + ``masks/``, the test part) the gate scores those photos at their own size, as
served (``model.scoring``). Without them, as below, generated frames.

onnxruntime static quantisation after ``quant_pre_process``: QDQ format, int8 per-channel
weights, uint8 activations calibrated (MinMax) on 128 frames of the training distribution
(generated with training seed 0 and preprocessed by ``model.preprocessing``, as served;
never the held-out seed, never noise). InstanceNormalization and the last conv (the logits
the threshold reads) stay float, and MaxPool reads the float tensor rather than a
dequantised copy of it. Why these choices: the table in model/weights/MODEL_CARD.md
(``python -m bench.quantize_configs``).

Then the gate, on 500 held-out images: the int8 masks must agree with the float model's
(pooled mask IoU >= 0.99) and its held-out IoU may be at most 0.005 below the float
model's. If it fails, the command exits 1 and writes nothing. The output keeps the
input's metadata, so ``model.evaluate`` and the server take it as it is, plus
``precision``, ``quantization`` (how it was made) and ``quantization_gate`` (what the
gate measured). The last line printed is one JSON object with the result.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from PIL import Image
from tqdm import tqdm

from model.datasets import IMAGE_EXTENSIONS, SyntheticDataset
from model.evaluate import HELDOUT_SIZE, heldout_batches, open_session, predict_masks
from model.metadata import read_preprocessing
from model.preprocessing import Preprocessing
from model.scoring import OnnxPredictor, labelled_photos, predict_mask
from model.synthetic import HELDOUT_SEED, describe_synthetic

log = logging.getLogger("model.quantize")

# Defaults (the measurements behind them: MODEL_CARD.md, "int8 variant")
CALIBRATION_SEED = 0  # a training seed: the distribution the model learned; the held-out seed is refused
CALIBRATION_IMAGES = 128  # ranges covering more of the distribution; 32 scored within 0.0003 (MODEL_CARD.md)
CALIBRATION_CHUNK = 8  # images per calibration pass: the calibrator holds every intermediate tensor of a pass
GATE_IMAGES = HELDOUT_SIZE  # the held-out set the model card reports on (500)
MIN_MASK_IOU = 0.99  # int8 masks vs the float model's masks, pooled over all pixels
MAX_IOU_DROP = 0.005  # held-out IoU: float minus int8
GATE_BATCH = 8

FORMATS = {"QDQ": QuantFormat.QDQ, "QOperator": QuantFormat.QOperator}
ACTIVATIONS = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
METHODS = {m.name: m for m in (CalibrationMethod.MinMax, CalibrationMethod.Entropy, CalibrationMethod.Percentile)}


@dataclass(frozen=True)
class QuantConfig:
    """How to quantise: the choices the model card's table compares (defaults: the shipped model)."""

    quant_format: str = "QDQ"  # onnxruntime fuses DQ -> Conv -> Q into QLinearConv; as fast as QOperator here
    activations: str = "uint8"  # uint8 x int8 is MLAS's VNNI path on x86; int8 activations: same masks, no faster
    calibration: str = "MinMax"  # Entropy/Percentile: +0.0001-0.0002 mask IoU for 2.5-3.6x the calibration time
    float_op_types: tuple[str, ...] = ("InstanceNormalization",)  # no int8 kernel: keep its scale and bias float
    float_logits: bool = True  # the last conv stays float: the threshold reads its output
    float_pool_inputs: bool = True  # float MaxPool: 1-2 ms a run against 16-21 for onnxruntime's uint8 one

    def describe(self) -> dict[str, object]:
        weights = "int8, per output channel, symmetric"
        return {**asdict(self), "float_op_types": list(self.float_op_types), "weights": weights}


class CalibrationImages(CalibrationDataReader):
    """The calibrator's input, one image a run, in chunks (``set_range``) so its memory stays bounded."""

    def __init__(self, inputs: np.ndarray, input_name: str) -> None:
        self.inputs, self.input_name = inputs, input_name
        self.progress = tqdm(total=len(inputs), desc="calibrating", unit="image", mininterval=2)
        self.set_range(0, len(inputs))

    def __len__(self) -> int:
        return len(self.inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self.pending = iter(self.inputs[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        image = next(self.pending, None)
        if image is None:
            return None
        self.progress.update()
        if self.progress.n == len(self.inputs):
            self.progress.close()
        return {self.input_name: image[None]}


def calibration_inputs(prep: Preprocessing, count: int, seed: int = CALIBRATION_SEED) -> np.ndarray:
    """``count`` generated frames of the training distribution as model inputs (float32 NCHW)."""
    if seed == HELDOUT_SEED:
        raise ValueError(f"seed {HELDOUT_SEED} is the held-out set: calibrate on a training seed, e.g. 0")
    dataset = SyntheticDataset(count, prep, seed=seed)
    pixels = torch.stack([dataset[i][0] for i in tqdm(range(count), desc="calibration images", mininterval=2)])
    return prep.normalise(pixels).numpy()


def photo_calibration_inputs(prep: Preprocessing, folder: Path, count: int) -> np.ndarray:
    """``count`` photos of ``folder/images``, evenly spread over its sorted names, as model inputs."""
    paths = sorted(p for p in (folder / "images").iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
    if not paths:
        raise SystemExit(f"no images in {folder / 'images'} to calibrate on")
    chosen = [paths[i] for i in np.linspace(0, len(paths) - 1, min(count, len(paths))).round().astype(int)]
    inputs = []
    for path in tqdm(chosen, desc="calibration photos", mininterval=2):
        with Image.open(path) as photo:
            inputs.append(prep.image_to_input(photo)[0])
    return np.stack(inputs)


def quantize_model(
    source: Path, out: Path, config: QuantConfig, inputs: np.ndarray, cache: Path | None = None
) -> None:
    """Write ``source`` quantised to ``out``: pre-processing, calibration on ``inputs``, the graph passes."""
    with tempfile.TemporaryDirectory(prefix="quantize.") as scratch:
        prepared = Path(scratch) / "prepared.onnx"
        quant_pre_process(str(source), str(prepared))
        graph = onnx.load(str(prepared)).graph
        chunk = max(c for c in range(1, min(CALIBRATION_CHUNK, len(inputs)) + 1) if len(inputs) % c == 0)
        quantize_static(
            str(prepared),
            str(out),
            CalibrationImages(inputs, graph.input[0].name),
            quant_format=FORMATS[config.quant_format],
            activation_type=ACTIVATIONS[config.activations],
            weight_type=QuantType.QInt8,
            per_channel=True,
            calibrate_method=METHODS[config.calibration],
            nodes_to_exclude=float_nodes(graph, config),
            extra_options={"CalibStridedMinMax": chunk},
            calibration_cache_path=cache,
        )
    model = onnx.load(str(out))
    if config.float_pool_inputs:
        log.info("graph pass: %d MaxPool/Shape inputs no longer dequantised", skip_needless_dequantize(model.graph))
    onnx.save(model, str(out))


def float_nodes(graph: onnx.GraphProto, config: QuantConfig) -> list[str]:
    """Names of the nodes that stay float: ``config.float_op_types``, and the last conv if ``float_logits``."""
    names = [node.name for node in graph.node if node.op_type in config.float_op_types]
    convs = [node.name for node in graph.node if node.op_type == "Conv"]
    return names + convs[-1:] if config.float_logits else names


def skip_needless_dequantize(graph: onnx.GraphProto) -> int:
    """MaxPool reads the float tensor a Q -> DQ pair came from; Shape reads the quantised one.

    Max commutes with (monotonic) quantisation, so MaxPool on the float tensor, then its Q,
    gives what Q -> DQ -> MaxPool -> Q gives, with one rounding fewer; onnxruntime runs it
    in its blocked float layout. A Shape needs no values at all. Dequantisers left without
    readers are removed. Returns the number of inputs rewired.
    """
    producers = {output: node for node in graph.node for output in node.output}
    rewired = 0
    for node in graph.node:
        dequantize = producers.get(node.input[0]) if node.op_type in ("MaxPool", "Shape") else None
        if dequantize is None or dequantize.op_type != "DequantizeLinear":
            continue
        quantize = producers.get(dequantize.input[0])
        if node.op_type == "Shape":
            node.input[0] = dequantize.input[0]
        elif quantize is not None and quantize.op_type == "QuantizeLinear":
            node.input[0] = quantize.input[0]
        rewired += node.input[0] != dequantize.output[0]
    remove_unread_nodes(graph)
    return rewired


def remove_unread_nodes(graph: onnx.GraphProto) -> None:
    """Drop nodes none of whose outputs is read by another node or is a graph output."""
    while True:
        read = {name for node in graph.node for name in node.input} | {output.name for output in graph.output}
        unread = [node for node in graph.node if not any(output in read for output in node.output)]
        if not unread:
            return
        for node in unread:
            graph.node.remove(node)


@dataclass(frozen=True)
class GateResult:
    """What the gate measured on held-out images, and the bar it held the int8 model to."""

    images: int
    iou_float: float  # pooled held-out IoU of the float model
    iou_int8: float
    mask_iou: float  # int8 masks vs float masks, pooled over all pixels
    min_mask_iou: float
    max_iou_drop: float

    @property
    def passed(self) -> bool:
        drop = round(self.iou_float - self.iou_int8, 6)  # the IoUs have 5 decimals: no float dust at the bound
        return self.mask_iou >= self.min_mask_iou and drop <= self.max_iou_drop

    def to_dict(self) -> dict[str, object]:
        return {**asdict(self), "passed": self.passed}


def compare_on_heldout(float_path: Path, int8_path: Path, images: int) -> tuple[float, float, float]:
    """(float IoU, int8 IoU, int8-vs-float mask IoU), each pooled over ``images`` held-out images."""
    float_session, int8_session = open_session(float_path), open_session(int8_path)
    prep = read_preprocessing(float_session.get_modelmeta().custom_metadata_map)
    counts = np.zeros((3, 2), dtype=np.int64)  # rows: float vs truth, int8 vs truth, int8 vs float
    batches = heldout_batches(prep, images, GATE_BATCH)
    for inputs, truth in tqdm(batches, total=math.ceil(images / GATE_BATCH), desc="gate", mininterval=2):
        reference, candidate = predict_masks(float_session, inputs), predict_masks(int8_session, inputs)
        for row, (a, b) in enumerate([(reference, truth), (candidate, truth), (candidate, reference)]):
            counts[row] += (int((a & b).sum()), int((a | b).sum()))
    iou_float, iou_int8, mask_iou = (float(i / u) if u else 1.0 for i, u in counts)
    return iou_float, iou_int8, mask_iou


def compare_on_photos(float_path: Path, int8_path: Path, folder: Path) -> tuple[float, float, float, int]:
    """As ``compare_on_heldout``, on labelled photos at their own size; and how many photos."""
    reference_model, candidate_model = OnnxPredictor(float_path), OnnxPredictor(int8_path)
    counts = np.zeros((3, 2), dtype=np.int64)
    photos = labelled_photos(folder)
    for item in tqdm(photos, desc="gate", mininterval=2):
        reference = predict_mask(reference_model, item)
        candidate = predict_mask(candidate_model, item)
        for row, (a, b) in enumerate([(reference, item.truth), (candidate, item.truth), (candidate, reference)]):
            counts[row] += (int((a & b).sum()), int((a | b).sum()))
    iou_float, iou_int8, mask_iou = (float(i / u) if u else 1.0 for i, u in counts)
    return iou_float, iou_int8, mask_iou, len(photos)


def with_metadata(model: onnx.ModelProto, source: onnx.ModelProto, extra: dict[str, str]) -> onnx.ModelProto:
    """``model`` carrying ``source``'s metadata and doc string, plus ``extra`` keys."""
    props = {prop.key: prop.value for prop in source.metadata_props}
    onnx.helper.set_model_props(model, {**props, **extra})
    model.doc_string = source.doc_string
    return model


def write_atomically(model: onnx.ModelProto, out: Path) -> None:
    """Save to a temporary name beside ``out``, renamed over ``out`` only once complete."""
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.{os.getpid()}.partial")
    try:
        onnx.save(model, str(temporary))
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the float ONNX model (model.export's output)")
    parser.add_argument("out", type=Path, help="where the int8 model goes, if it passes the gate")
    parser.add_argument("--calibration-images", type=int, default=CALIBRATION_IMAGES)
    parser.add_argument("--calibration-seed", type=int, default=CALIBRATION_SEED, help="a training seed")
    parser.add_argument("--gate-images", type=int, default=GATE_IMAGES, help="held-out images the gate scores")
    parser.add_argument("--calibration-data", type=Path, default=None, help="photos to calibrate on (images/)")
    parser.add_argument("--gate-data", type=Path, default=None, help="labelled photos the gate scores")
    parser.add_argument("--min-mask-iou", type=float, default=MIN_MASK_IOU, help="int8 vs float masks, pooled")
    parser.add_argument("--max-iou-drop", type=float, default=MAX_IOU_DROP, help="held-out IoU, float - int8")
    parser.add_argument("--format", choices=sorted(FORMATS), default=QuantConfig.quant_format)
    parser.add_argument("--activations", choices=sorted(ACTIVATIONS), default=QuantConfig.activations)
    parser.add_argument("--calibration", choices=sorted(METHODS), default=QuantConfig.calibration)
    parser.add_argument("--float-op-types", nargs="*", default=list(QuantConfig.float_op_types), metavar="OP")
    parser.add_argument("--int8-logits", action="store_true", help="quantise the last conv too")
    parser.add_argument("--dequantized-pool-inputs", action="store_true", help="skip the MaxPool/Shape pass")
    args = parser.parse_args(argv)
    if args.calibration_seed == HELDOUT_SEED:
        parser.error(f"--calibration-seed {HELDOUT_SEED} is the held-out set; calibrate on a training seed (0)")
    if min(args.calibration_images, args.gate_images) < 1:
        parser.error("--calibration-images and --gate-images must be at least 1")
    return args


def config_from(args: argparse.Namespace) -> QuantConfig:
    return QuantConfig(
        quant_format=args.format,
        activations=args.activations,
        calibration=args.calibration,
        float_op_types=tuple(args.float_op_types),
        float_logits=not args.int8_logits,
        float_pool_inputs=not args.dequantized_pool_inputs,
    )


def run_gate(float_path: Path, candidate: Path, args: argparse.Namespace) -> GateResult:
    if args.gate_data:
        log.info("gate: the photos of %s at their own size", args.gate_data)
        *figures, images = compare_on_photos(float_path, candidate, args.gate_data)
    else:
        log.info("gate: %d held-out images (seed %d)", args.gate_images, HELDOUT_SEED)
        figures, images = list(compare_on_heldout(float_path, candidate, args.gate_images)), args.gate_images
    iou_float, iou_int8, mask_iou = (round(v, 5) for v in figures)
    return GateResult(images, iou_float, iou_int8, mask_iou, args.min_mask_iou, args.max_iou_drop)


def describe(config: QuantConfig, args: argparse.Namespace) -> dict[str, object]:
    """The ``quantization`` metadata: the config, the calibration set it saw and the gate's photos."""
    seed = args.calibration_seed
    if args.calibration_data:
        data = f"photos of {args.calibration_data.name} (evenly spread)"
        calibration: dict[str, object] = {"images": args.calibration_images, "data": data}
    else:
        calibration = {"images": args.calibration_images, "seed": seed, "data": describe_synthetic([seed])}
    gate_data = str(args.gate_data.name) if args.gate_data else f"generated, seed {HELDOUT_SEED}"
    return {**config.describe(), "calibration_set": calibration, "gate_set": gate_data,
            "onnxruntime": ort.__version__}


def publish(candidate: Path, source: onnx.ModelProto, result: dict[str, object], out: Path, split: str) -> int:
    """Write the candidate to ``out`` with the source's metadata and the int8 keys; returns its size.

    ``metrics`` become the int8 model's own (the gate's figures, labelled ``split``: the float
    model's would describe another file), and the version says int8 (``1.0.0+int8``), so /health tells them apart.
    """
    props = {prop.key: prop.value for prop in source.metadata_props}
    gate = result["gate"]
    assert isinstance(gate, dict)
    extra = {
        "precision": "int8",
        "quantization": json.dumps(result["quantization"], sort_keys=True),
        "quantization_gate": json.dumps(gate, sort_keys=True),
        "metrics": json.dumps({split: {"iou": gate["iou_int8"], "images": gate["images"],
                                            "mask_iou_vs_float": gate["mask_iou"]}}, sort_keys=True),
        "model_version": f"{props.get('model_version', 'unversioned')}+int8",
    }
    write_atomically(with_metadata(onnx.load(str(candidate)), source, extra), out)
    log.info("gate passed: wrote %s (%d bytes)", out, out.stat().st_size)
    return out.stat().st_size


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = config_from(args)
    # 1. the float model and the preprocessing its metadata describes
    source = onnx.load(str(args.model))
    prep = read_preprocessing({prop.key: prop.value for prop in source.metadata_props})
    # 2. calibration frames: the training distribution, preprocessed as served
    if args.calibration_data:
        inputs = photo_calibration_inputs(prep, args.calibration_data, args.calibration_images)
    else:
        inputs = calibration_inputs(prep, args.calibration_images, args.calibration_seed)
    with tempfile.TemporaryDirectory(prefix="quantize.") as scratch:
        # 3. quantise into a scratch folder
        candidate = Path(scratch) / "candidate.onnx"
        quantize_model(args.model, candidate, config, inputs)
        # 4. the gate, on held-out images that calibration never saw
        gate = run_gate(args.model, candidate, args)
        result: dict[str, object] = {"out": str(args.out), "gate": gate.to_dict()}
        result["quantization"] = describe(config, args)
        # 5. write only what passed
        if gate.passed:
            split = "test" if args.gate_data else "held_out"
            result["size_bytes"] = publish(candidate, source, result, args.out, split)
        else:
            log.error("gate failed (%s): nothing written to %s", gate, args.out)
    print(json.dumps(result))  # noqa: T201 - the last line is the result
    if not gate.passed:
        sys.exit(1)


if __name__ == "__main__":
    main()
