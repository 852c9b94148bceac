"""The model at run time: one onnxruntime session, image in, boolean mask out.

``Segmenter(path, sha256)`` builds the session once (per process, never per
request) and reads input size, normalisation and threshold from the model's
metadata (``app.core.inference.contract``). ``segment(image)`` returns a ``Prediction``:
the boolean HxW mask at the image's own size and the milliseconds of each stage:

- ``resize``: Pillow BILINEAR to the model's size, then to sRGB when the image carries
  another ICC profile (``app.core.decoding.colour``: the model was trained on sRGB; converting the
  small image, not the full one, costs ~1 ms), and ``(pixel * scale - mean) / std`` in
  float32, exactly as ``model.preprocessing.Preprocessing`` does in training;
- ``infer``: onnxruntime;
- ``upsample``: sigmoid, then the probabilities resized (Pillow BILINEAR on a float
  "F" image) to the original size and thresholded there, for clean edges.

Threads: intra-op = the CPUs the process may use (``app.core.resources.cpus``), inter-op = 1, and
no spinning, so an idle server does not burn CPU between requests
(https://onnxruntime.ai/docs/performance/tune-performance/threading.html).
``run`` is thread-safe; concurrent requests share the one session.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from PIL import Image

from app.core.decoding.colour import rgb_profile, to_srgb
from app.core.inference.contract import InvalidModel, ModelInfo, ModelSpec, read_spec
from app.core.resources.bands import rows_per_band, run_bands
from app.core.resources.cpus import process_cpus
from app.core.resources.memory import keeps_freed, trim_heap
from app.core.timing import Stopwatch

OUTPUT_NAME = "logits"  # the contract's output; the first output if a file names it otherwise


def _arena_given_back() -> ort.RunOptions:
    """A run that ends by giving back the CPU arena's free regions ("memory.enable_memory_arena_shrinkage",
    https://github.com/microsoft/onnxruntime/blob/main/include/onnxruntime/core/session/onnxruntime_run_options_config_keys.h).

    The arena keeps one inference's working memory for the next (this UNet's: ~55 MB). After a large image's
    inference (``keeps_freed``) it is given back, so that image's own peak (upsample, drawing, encoding: 5.4 bytes a
    pixel at 40 MP) is not on top of it; the next inference grows it again (~10 ms, once).
    """
    options = ort.RunOptions()
    options.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    return options


ARENA_GIVEN_BACK = _arena_given_back()


@dataclass(frozen=True)
class Prediction:
    """A boolean HxW mask at the image's size and the milliseconds of each stage."""

    mask: np.ndarray
    timings_ms: dict[str, float]


CPU_ONLY: tuple[tuple[str, dict[str, Any]], ...] = (("CPUExecutionProvider", {}),)


def open_session(path: Path, threads: int, providers: Sequence[tuple[str, dict[str, Any]]] = CPU_ONLY
                 ) -> ort.InferenceSession:
    """A session on ``providers`` (``app.core.inference.providers``) with the CPU's threads explicit, no spinning
    between requests, and no memory pattern.

    The memory pattern (on by default) plans one block per input shape and keeps it on
    top of the arena; turning it off took ~75 MB off the served peak at the same speed
    (``python -m bench.session_options``, docs/benchmarks.md). Loading the model leaves
    its freed protobuf and graph-optimisation buffers in the C heap: trimmed here.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.enable_mem_pattern = False
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=list(providers))
    trim_heap()
    return session


def sigmoid(logits: np.ndarray) -> np.ndarray:
    """Overflow-free float32 sigmoid (logits of +-200 occur on out-of-distribution inputs)."""
    decay = np.exp(-np.abs(logits))
    return np.where(logits >= 0, 1.0 / (1.0 + decay), decay / (1.0 + decay)).astype(np.float32)


class Segmenter:
    """Owns the model's ``InferenceSession``; see the module docstring."""

    def __init__(self, path: Path, sha256: str, threads: int | None = None,
                 providers: Sequence[tuple[str, dict[str, Any]]] = CPU_ONLY) -> None:
        self.threads = threads or process_cpus()
        self._session = open_session(path, self.threads, providers)
        self.provider: str = self._session.get_providers()[0]  # the one that runs (the others: fallbacks)
        self.spec: ModelSpec = read_spec(self._session.get_modelmeta().custom_metadata_map)
        self._input_name, self._output_name = self._check_graph()
        self._mean = np.asarray(self.spec.mean, dtype=np.float32)
        self._std = np.asarray(self.spec.std, dtype=np.float32)
        self.info = ModelInfo.of(self.spec, sha256)

    def _check_graph(self) -> tuple[str, str]:
        """The graph's real input name and its logits output; refuses a shape the metadata contradicts."""
        inputs, outputs = self._session.get_inputs(), self._session.get_outputs()
        shape = inputs[0].shape
        expected = [3, self.spec.input_height, self.spec.input_width]
        matches = len(shape) == 4 and all(
            not isinstance(dim, int) or dim == want for dim, want in zip(shape[1:], expected, strict=True)
        )
        if not matches:  # symbolic dims (a dynamic batch) match anything
            raise InvalidModel(f"the model's input shape {shape} does not match its metadata's Nx{expected}")
        names = [output.name for output in outputs]
        return inputs[0].name, OUTPUT_NAME if OUTPUT_NAME in names else names[0]

    @property
    def input_size(self) -> tuple[int, int]:
        """The model's input (width, height): what a decoder may reduce an image towards
        (``app.core.decoding.imaging``)."""
        return self.spec.input_width, self.spec.input_height

    def segment(self, image: Image.Image, threshold: float | None = None,
                size: tuple[int, int] | None = None) -> Prediction:
        """The foreground mask at ``size`` (default: ``image``'s; a reduced view of a larger image passes the
        full size) and stage timings. ``threshold`` comes validated (``app.core.options.Threshold``); None
        means the model's own.
        """
        watch = Stopwatch()
        batch = self.preprocess(image)
        watch.lap("resize")
        prediction = self.segment_input(batch, size or image.size, threshold)
        return Prediction(mask=prediction.mask, timings_ms=watch.laps_ms | prediction.timings_ms)

    def segment_input(self, batch: np.ndarray, size: tuple[int, int], threshold: float | None = None) -> Prediction:
        """``segment`` from the model's input (``preprocess``): the model, then the mask at ``size``. The pipeline
        calls the two halves itself, to start the full-size decode between them (``app.core.pipeline``)."""
        cutoff = self.spec.threshold if threshold is None else threshold
        watch = Stopwatch()
        run_options = None if keeps_freed(size[0] * size[1]) else ARENA_GIVEN_BACK
        logits = self._session.run([self._output_name], {self._input_name: batch}, run_options)[0]
        watch.lap("infer")
        mask = upsample_mask(logits[0, 0], size, cutoff)
        watch.lap("upsample")
        return Prediction(mask=mask, timings_ms=watch.laps_ms)

    def preprocess(self, image: Image.Image) -> np.ndarray:
        """Image -> float32 1x3xHxW model input, as ``model.preprocessing.Preprocessing.image_to_input``."""
        rgb = image if image.mode == "RGB" else image.convert("RGB")
        small = rgb.resize((self.spec.input_width, self.spec.input_height), Image.Resampling.BILINEAR)
        channels = np.asarray(to_srgb(small, rgb_profile(image))).transpose(2, 0, 1)  # HWC bytes seen as CHW
        if self.spec.channel_order == "BGR":
            channels = channels[::-1]
        # (pixels * scale - mean) / std, each operation into the CHW input itself: the same float32 numbers as on
        # HWC, without broadcasting over a last axis of 3 (0.86 -> 0.23 ms at 256x256, measured 2026-12-07)
        batch = np.empty((1, *channels.shape), dtype=np.float32)
        np.multiply(channels, np.float32(self.spec.scale), out=batch[0])
        np.subtract(batch[0], self._mean[:, None, None], out=batch[0])
        np.divide(batch[0], self._std[:, None, None], out=batch[0])
        return batch


def upsample_mask(logits: np.ndarray, size: tuple[int, int], threshold: float) -> np.ndarray:
    """HxW logits at the model's size -> boolean mask at ``size`` (width, height).

    Bilinear upsampling of the probabilities in bands of output rows: Pillow computes
    each band from the whole source (``box`` only positions it), so the result is the
    full-size resize's (up to float rounding in the last place, which can move a pixel
    whose probability is within ~1e-7 of the threshold), without a float copy of a
    12 MP image (48 MB, twice) in memory, and ~3x faster there (cache-sized bands).
    """
    return upsample_probabilities(sigmoid(np.ascontiguousarray(logits, dtype=np.float32)), size, threshold)


def upsample_probabilities(probabilities: np.ndarray, size: tuple[int, int], threshold: float) -> np.ndarray:
    """HxW float32 probabilities -> boolean mask at ``size``, as ``upsample_mask`` (offline scoring uses it too).

    The bands run on the usable CPUs (``app.core.resources.bands``), each writing its own rows of the mask. Each
    band is thresholded in Pillow (``threshold_shifted``: 1 where the probability reaches the threshold, else 0, as
    an "L" band), so only a byte a pixel comes out of Pillow: taking the float band out (``np.asarray``, a copy
    made in 64 KB pieces under the GIL) cost more than its resize (1080p: 6.4 against 4.1 ms, 2026-12-07).
    """
    source = Image.fromarray(threshold_shifted(probabilities, threshold))
    width, height = size
    rows_per_source_row = source.height / height
    mask = np.empty((height, width), dtype=bool)

    def threshold_band(top: int, bottom: int) -> None:
        box = (0.0, top * rows_per_source_row, float(source.width), bottom * rows_per_source_row)
        band = source.resize((width, bottom - top), Image.Resampling.BILINEAR, box=box).convert("L")
        mask[top:bottom] = np.asarray(band).view(bool)  # 0 or 1, a bool's bytes

    run_bands(threshold_band, height, rows_per_band(width))
    return mask


def threshold_shifted(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """``1 + (p - threshold) * scale``: at least 1 exactly where p reaches the threshold and below 2 for any p in
    [0, 1]. Bilinear weights sum to 1, so the upsampled values keep that property (up to float rounding within
    ~1e-7 of the threshold), and Pillow's "F" to "L" conversion, which truncates (``f2l`` in Convert.c), makes
    them 1 or 0."""
    scale = np.float32(0.99 / max(threshold, 1.0 - threshold))
    # Probabilities outside [0, 1] (a caller's, not the sigmoid's) would give levels of 2 and more, not a bool's
    # 0 or 1; NaN is background, as it is never >= the threshold
    shifted = np.clip(np.asarray(probabilities, dtype=np.float32), 0.0, 1.0)  # a new array: worked in place below
    np.nan_to_num(shifted, copy=False, nan=0.0)
    shifted -= np.float32(threshold)
    shifted *= scale
    return np.add(shifted, np.float32(1.0), out=shifted)
