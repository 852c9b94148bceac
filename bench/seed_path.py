"""The old service's path, for comparison in the same run: PyTorch eager, the same UNet weights, Pillow's PNG.

    python -m bench.seed_path IMAGE [--dtype float16]      # one fresh process: load, render once, report

What the service this one replaced did with an upload, as its issue describes it:
decode with Pillow, resize to the model's 256x256 and normalise, run the UNet in
PyTorch eager mode (fp32; fp16 on the CPU is what took it 52 s a frame), threshold
at 0.5, scale the mask up (nearest), blend the colour over the foreground with
Pillow and save a PNG at Pillow's default level. The weights are the bundled
model's own, read from the ONNX file's initializers (the exporter kept the
state-dict names), so both paths compute the same network.
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()  # before torch's import: the process's cost is part of what is compared

import argparse  # noqa: E402
import io  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import torch  # noqa: E402
from onnx import numpy_helper  # noqa: E402
from PIL import Image  # noqa: E402

from bench.memory import vmhwm_mb  # noqa: E402
from model.unet import UNet  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODEL = REPO / "model" / "weights" / "unet.onnx"
SIZE = 256
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
COLOR, ALPHA = (255, 59, 48), 0.5


def torch_unet(onnx_path: Path, dtype: torch.dtype) -> UNet:
    """The UNet in eval mode with the ONNX file's weights (initializer names are the state-dict keys)."""
    weights = {item.name: torch.from_numpy(numpy_helper.to_array(item).copy())
               for item in onnx.load(str(onnx_path)).graph.initializer}
    model = UNet()
    model.load_state_dict(weights, strict=True)
    return model.eval().to(dtype)


def seed_render(model: UNet, data: bytes, dtype: torch.dtype) -> bytes:
    """Bytes in, PNG out, the old way: one image, no limits, no bands, Pillow's default PNG."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    pixels = np.asarray(image.resize((SIZE, SIZE), Image.Resampling.BILINEAR), dtype=np.float32) / 255.0
    batch = torch.from_numpy(((pixels - MEAN) / STD).astype(np.float32).transpose(2, 0, 1)[None]).to(dtype)
    with torch.inference_mode():
        probabilities = torch.sigmoid(model(batch).float())[0, 0].numpy()
    mask = Image.fromarray(((probabilities >= 0.5) * 255).astype(np.uint8)).resize(image.size, Image.Resampling.NEAREST)
    overlay = Image.composite(Image.blend(image, Image.new("RGB", image.size, COLOR), ALPHA), image, mask)
    buffer = io.BytesIO()
    overlay.save(buffer, format="PNG")
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", type=Path)
    parser.add_argument("--dtype", choices=("float32", "float16"), default="float32")
    parser.add_argument("--rounds", type=int, default=1, help="renders after the first (medians are the parent's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(len(os.sched_getaffinity(0)))
    dtype = getattr(torch, args.dtype)
    model, data = torch_unet(MODEL, dtype), args.image.read_bytes()
    loaded = time.perf_counter()
    times_ms = []
    for _ in range(1 + args.rounds):
        tick = time.perf_counter()
        png = seed_render(model, data, dtype)
        times_ms.append((time.perf_counter() - tick) * 1000.0)
    return {"load_s": loaded - STARTED, "render_ms": times_ms, "png_bytes": len(png), "vmhwm_mb": vmhwm_mb(os.getpid())}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main()) + "\n")
