"""Export a training checkpoint to ONNX, then prove the file computes what PyTorch does.

    python -m model.export runs/ref/best.pt model/weights/unet.onnx --name unet-synthetic-blobs --version 1.0.0

Eval mode, opset 17, input ``image`` (float32 NCHW, dynamic batch), output ``logits``.
After writing: ``onnx.checker``, then onnxruntime against PyTorch on random and
real inputs at batch 1 and 4. Any logit off by more than 1e-4, or masks that
agree on under 99.9% of pixels, fails the export (the file is removed).

On real images "off" means more than 1e-4. On random-noise inputs it means more
than 1e-4 plus 1e-5 of the batch's largest |logit|: white noise drives the
reference model's logits to ~200, where float32 itself cannot hold 1e-4
(PyTorch's float32 output there is 2.1e-4 away from a float64 run of the same
weights; onnxruntime's 1.9e-4). Masks must agree in both cases.
"""

from __future__ import annotations

import argparse
import logging
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch

from model.datasets import SyntheticDataset
from model.metadata import build_metadata
from model.preprocessing import Preprocessing
from model.synthetic import HELDOUT_SEED
from model.unet import UNet, UNetConfig

log = logging.getLogger("model.export")

OPSET = 17
# The TorchScript exporter, on purpose: its graph keeps InstanceNormalization as one op and
# ran the reference model in 204 ms here against 247 ms for the dynamo exporter's
# decomposed graph (median of 5, onnxruntime 1.32, 2 threads, 256x256).
EXPORTER = "torchscript"
MAX_LOGIT_DIFF = 1e-4
NOISE_RELATIVE_LOGIT_DIFF = 1e-5  # on noise inputs, of the largest |logit| (see the docstring)
MIN_MASK_AGREEMENT = 0.999
PARITY_BATCHES = (1, 4)


class ExportMismatch(RuntimeError):
    """The ONNX file does not reproduce PyTorch within tolerance."""


def load_checkpoint(path: Path) -> tuple[UNet, Preprocessing, dict[str, Any]]:
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    model = UNet(UNetConfig.from_dict(checkpoint["config"]))
    model.load_state_dict(checkpoint["model"], strict=True)
    prep_values = checkpoint.get("preprocessing", {})
    prep = Preprocessing(**{**prep_values, **{k: tuple(v) for k, v in prep_values.items() if k in ("mean", "std")}})
    return model.eval(), prep, checkpoint


def export_onnx(model: UNet, prep: Preprocessing, out: Path, metadata: Mapping[str, str]) -> None:
    """Write the graph, attach metadata, check it, verify parity; remove the file on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    dummy = torch.randn(1, model.config.in_channels, prep.height, prep.width)
    with warnings.catch_warnings():
        # Expected while tracing: InstanceNorm's shape checks (TracerWarning), "instance_norm is
        # set to train=True" (it always normalises with the input's own statistics) and the
        # TorchScript exporter's deprecation notices (see EXPORTER above).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message=".*instance_norm.*", category=UserWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            model,
            (dummy,),
            str(out),
            input_names=["image"],
            output_names=["logits"],
            opset_version=OPSET,
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
            dynamo=EXPORTER == "dynamo",
        )
    proto = onnx.load(str(out))
    onnx.helper.set_model_props(proto, dict(metadata))
    proto.doc_string = metadata.get("training_data", "")
    onnx.checker.check_model(proto)
    onnx.save(proto, str(out))
    try:
        verify_parity(model, out, parity_inputs(prep, model.config.in_channels))
    except ExportMismatch:
        out.unlink(missing_ok=True)
        raise


def parity_inputs(prep: Preprocessing, channels: int) -> list[tuple[str, np.ndarray]]:
    """("noise", ...) and ("real", held-out images) inputs at every parity batch size."""
    rng = np.random.default_rng(0)
    real = SyntheticDataset(max(PARITY_BATCHES), prep, seed=HELDOUT_SEED)
    real_batch = prep.normalise(torch.stack([real[i][0] for i in range(len(real))])).numpy()
    inputs = []
    for batch in PARITY_BATCHES:
        inputs.append(("noise", rng.standard_normal((batch, channels, prep.height, prep.width), dtype=np.float32)))
        if channels == 3:
            inputs.append(("real", real_batch[:batch]))
    return inputs


def verify_parity(model: UNet, onnx_path: Path, inputs: list[tuple[str, np.ndarray]]) -> None:
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for kind, batch in inputs:
        with torch.no_grad():
            expected = model(torch.from_numpy(batch)).numpy()
        actual = session.run(["logits"], {"image": batch})[0]
        max_diff, largest = float(np.abs(actual - expected).max()), float(np.abs(expected).max())
        agreement = float(((actual > 0) == (expected > 0)).mean())
        allowed = MAX_LOGIT_DIFF + (NOISE_RELATIVE_LOGIT_DIFF * largest if kind == "noise" else 0.0)
        log.info(
            "parity %s batch %d: max |logit diff| %.2e (allowed %.2e, max |logit| %.1f), mask agreement %.5f",
            kind,
            len(batch),
            max_diff,
            allowed,
            largest,
            agreement,
        )
        if max_diff > allowed or agreement < MIN_MASK_AGREEMENT:
            raise ExportMismatch(
                f"onnxruntime differs from PyTorch on {kind} batch {len(batch)}: "
                f"max diff {max_diff:.2e} (allowed {allowed:.2e}), mask agreement {agreement:.5f}"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="unet")
    parser.add_argument("--version", default="0.0.0")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    model, prep, checkpoint = load_checkpoint(args.checkpoint)
    identity = {
        "model_name": args.name,
        "model_version": args.version,
        "training_data": checkpoint.get("data", "unknown"),
    }
    export_onnx(model, prep, args.out, build_metadata(prep, identity, checkpoint.get("metrics", {})))
    log.info("wrote %s (%d bytes), parity verified", args.out, args.out.stat().st_size)


if __name__ == "__main__":
    main()
