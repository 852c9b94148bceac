"""Scoring models on labelled photos at each photo's own size, the way the service serves them.

A *predictor* turns a photo into a probability map at its model's input size: our ONNX
models (preprocessing and threshold from their metadata, ``app.core``'s contract) or
MediaPipe's selfie segmenter (a ``.tflite``: RGB squashed to 256x256, values in [0, 1],
NHWC, probabilities out; ``../shared/models/mediapipe-selfie/README.md``). Every
predictor's probabilities then go through the service's own upsampling
(``app.core.inference.segmenter.upsample_probabilities``: Pillow bilinear to the photo's size,
thresholded there), so a figure here is what ``POST /predict?output=mask`` would score.

Figures, per set of photos: pooled ``iou`` and ``dice`` over all pixels, ``mean_image_iou``,
and ``boundary_f``: the mean per-photo F-score of boundary pixels matched within a band of
1% of the photo's diagonal (the DAVIS contour measure, with its tolerance tied to size).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import onnxruntime as ort
from PIL import Image
from scipy import ndimage

from app.core.decoding.imaging import draft_for_model
from app.core.inference.segmenter import sigmoid, upsample_probabilities
from model.datasets import binarise_mask, match_images_to_masks
from model.metadata import read_preprocessing

BOUNDARY_BAND = 0.01  # of the image diagonal: the boundary F-score's tolerance
MEDIAPIPE_SIZE = 256  # the selfie segmenter's square input (its graph: selfie_segmentation_cpu.pbtxt)
MEDIAPIPE_THRESHOLD = 0.5


class Predictor(Protocol):
    name: str
    path: Path
    threshold: float
    view_size: tuple[int, int] | None  # the input size a JPEG is decoded towards, as served; None: the photo

    def probabilities(self, photo: Image.Image) -> np.ndarray:
        """HxW float32 foreground probabilities at the model's input size."""


class OnnxPredictor:
    """One of our exported models, preprocessed exactly as served; its metadata's threshold unless given."""

    def __init__(self, path: Path, threshold: float | None = None) -> None:
        self.path, self.session = path, open_session(path)
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.prep = read_preprocessing(metadata)
        self.threshold = float(metadata["threshold"]) if threshold is None else threshold
        self.name = metadata.get("model_name", path.stem)
        self.input_name = self.session.get_inputs()[0].name
        self.view_size: tuple[int, int] | None = (self.prep.width, self.prep.height)

    def probabilities(self, photo: Image.Image) -> np.ndarray:
        logits = self.session.run(None, {self.input_name: self.prep.image_to_input(photo)})[0]
        return sigmoid(logits[0, 0].astype(np.float32))


class MediaPipePredictor:
    """Google's MediaPipe selfie segmenter, run with LiteRT (``ai-edge-litert``, dev only)."""

    def __init__(self, path: Path, threshold: float = MEDIAPIPE_THRESHOLD) -> None:
        from ai_edge_litert.interpreter import Interpreter  # dev-only: imported for this predictor alone

        self.path, self.threshold, self.name = path, threshold, "mediapipe-selfie"
        self.view_size: tuple[int, int] | None = None  # not served here: it sees the decoded photo
        self.interpreter = Interpreter(model_path=str(path), num_threads=len(os.sched_getaffinity(0)))
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def probabilities(self, photo: Image.Image) -> np.ndarray:
        small = photo.convert("RGB").resize((MEDIAPIPE_SIZE, MEDIAPIPE_SIZE), Image.Resampling.BILINEAR)
        pixels = np.asarray(small, dtype=np.float32)[None] / 255.0
        self.interpreter.set_tensor(self.input_index, pixels)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output_index)[0, :, :, 0].astype(np.float32)


def open_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = len(os.sched_getaffinity(0))
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_predictor(path: Path) -> Predictor:
    """A ``.tflite`` is MediaPipe's segmenter; anything else one of our ONNX models."""
    return MediaPipePredictor(path) if path.suffix == ".tflite" else OnnxPredictor(path)


@dataclass
class Overlap:
    """Pooled intersection, union and pixel counts over masks, and each mask's own IoU."""

    intersection: int = 0
    union: int = 0
    predicted: int = 0
    actual: int = 0
    per_image_iou: list[float] = field(default_factory=list)

    def add(self, mask: np.ndarray, truth: np.ndarray) -> None:
        """One boolean mask and its truth, of any (the same) size."""
        inter, union = int((mask & truth).sum()), int((mask | truth).sum())
        self.intersection, self.union = self.intersection + inter, self.union + union
        self.predicted, self.actual = self.predicted + int(mask.sum()), self.actual + int(truth.sum())
        self.per_image_iou.append(inter / union if union else 1.0)

    def result(self) -> dict[str, float]:
        """Pooled ``iou`` and ``dice`` (1.0 where both are empty), ``mean_image_iou``; 5 decimals."""
        total = self.predicted + self.actual
        return {
            "iou": round(self.intersection / self.union, 5) if self.union else 1.0,
            "dice": round(2 * self.intersection / total, 5) if total else 1.0,
            "mean_image_iou": round(float(np.mean(self.per_image_iou)), 5),
        }


@dataclass
class PhotoScore(Overlap):
    """``Overlap`` of photos at their own size, plus each one's boundary F and the time inside the model."""

    per_image_boundary_f: list[float] = field(default_factory=list)
    model_seconds: float = 0.0

    def add(self, mask: np.ndarray, truth: np.ndarray) -> None:
        super().add(mask, truth)
        self.per_image_boundary_f.append(boundary_f_score(mask, truth))

    def result(self) -> dict[str, float]:
        count = len(self.per_image_iou)
        return {
            **super().result(),
            "boundary_f": round(float(np.mean(self.per_image_boundary_f)), 5),
            "ms_per_image": round(1000 * self.model_seconds / max(count, 1), 2),
            "images": count,
        }


def boundary_f_score(mask: np.ndarray, truth: np.ndarray, band: float = BOUNDARY_BAND) -> float:
    """F-score of boundary pixels matched within ``band`` of the diagonal (1.0 when neither has a boundary)."""
    tolerance = band * math.hypot(*mask.shape)
    edges, truth_edges = boundary(mask), boundary(truth)
    if not edges.any() or not truth_edges.any():
        return float(edges.any() == truth_edges.any())
    precision = float((ndimage.distance_transform_edt(~truth_edges)[edges] <= tolerance).mean())
    recall = float((ndimage.distance_transform_edt(~edges)[truth_edges] <= tolerance).mean())
    return 2 * precision * recall / (precision + recall) if precision + recall else 0.0


def boundary(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels that touch the background (4-neighbourhood)."""
    return mask & ~ndimage.binary_erosion(mask, border_value=1)


@dataclass(frozen=True)
class LabelledPhoto:
    name: str
    photo: Image.Image
    truth: np.ndarray  # boolean, the photo's size
    path: Path | None = None  # the file, for the model's view of it; None for a photo made in memory

    def view(self, size: tuple[int, int] | None) -> Image.Image:
        """What the service's model sees of this photo: the JPEG file decoded at the reduced scale the service
        decodes it at (``app.core.decoding.imaging.draft_for_model``, towards the model's input ``size``), else the
        photo."""
        if self.path is None or size is None:
            return self.photo
        with Image.open(self.path) as image:
            return image.convert("RGB") if draft_for_model(image, size) else self.photo


def labelled_photos(folder: Path, limit: int | None = None) -> list[LabelledPhoto]:
    """``folder/images`` + ``folder/masks`` paired by stem, decoded once; a size mismatch is an error."""
    pairs = match_images_to_masks(folder / "images", folder / "masks")[:limit]
    if not pairs:
        raise ValueError(f"no image/mask pairs under {folder}: expected images/ and masks/ matched by file stem")
    photos = []
    for image_path, mask_path in pairs:
        with Image.open(image_path) as image, Image.open(mask_path) as mask:
            photo, truth = image.convert("RGB"), binarise_mask(np.asarray(mask.convert("L")))
        if truth.shape != (photo.height, photo.width):
            raise ValueError(f"{mask_path} is {truth.shape[1]}x{truth.shape[0]}, its photo {photo.size}")
        photos.append(LabelledPhoto(image_path.stem, photo, truth, image_path))
    return photos


def predict_mask(predictor: Predictor, item: LabelledPhoto, score: PhotoScore | None = None) -> np.ndarray:
    """The boolean mask at the photo's size, as served; adds the model's time to ``score``."""
    started = time.perf_counter()
    probabilities = predictor.probabilities(item.view(predictor.view_size))
    if score is not None:
        score.model_seconds += time.perf_counter() - started
    return upsample_probabilities(probabilities, item.photo.size, predictor.threshold)


def score_photos(predictor: Predictor, photos: list[LabelledPhoto]) -> PhotoScore:
    score = PhotoScore()
    for item in photos:
        score.add(predict_mask(predictor, item, score), item.truth)
    return score


def sweep_thresholds(predictor: Predictor, photos: list[LabelledPhoto], thresholds: list[float]) -> dict[str, float]:
    """Pooled IoU at each threshold (probabilities computed once a photo): how validation picks one."""
    counts = {threshold: [0, 0] for threshold in thresholds}
    for item in photos:
        probabilities = predictor.probabilities(item.view(predictor.view_size))
        for threshold in thresholds:
            mask = upsample_probabilities(probabilities, item.photo.size, threshold)
            counts[threshold][0] += int((mask & item.truth).sum())
            counts[threshold][1] += int((mask | item.truth).sum())
    return {f"{threshold:g}": round(inter / union, 5) if union else 1.0 for threshold, (inter, union) in counts.items()}
