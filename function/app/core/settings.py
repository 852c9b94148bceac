"""Configuration: one pydantic-settings ``Settings`` read from environment variables.

Every field is an environment variable of the same name (``MAX_PIXELS=20000000``).
``get_settings()`` builds it once per process; tests construct ``Settings(...)``
and hand it to the app factory. Values are parsed here, once: a colour becomes
(r, g, b), a relative MODEL_URI becomes an absolute path.

MODEL_URI defaults to the bundled person model, the int8 one (faster than fp32 at the same
test-photo IoU within the gate's 0.005: model/weights/MODEL_CARD.md): ``model/weights/unet-int8.onnx``
of the checkout this package sits in (``make serve``), else ``app/model/unet-int8.onnx``
next to the package (where the Lambda image copies it), else
``<prefix>/share/unet-segmentation`` (where ``pip install .`` puts it). Set it to another path or to
``s3://bucket/key`` to serve a different model. A relative path is relative to the
directory the process was started in (where the user typed ``make serve``).
"""

from __future__ import annotations

import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.core.decoding.imaging import DecodeLimits
from app.core.inference.providers import CudaOptions, parse_preference
from app.core.options import DEFAULT_ALPHA, DEFAULT_COLOR, Alpha, ColorValue, RenderOptions
from app.core.resources.memory_limit import default_budget_mb

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # function/app
BUNDLED_MODEL_NAME = "unet-int8.onnx"
CHECKOUT_MODEL = PACKAGE_DIR.parents[1] / "model" / "weights" / BUNDLED_MODEL_NAME  # repo/function/app -> repo
PACKAGED_MODEL = PACKAGE_DIR / "model" / BUNDLED_MODEL_NAME
INSTALLED_MODEL = Path(sys.prefix) / "share" / "unet-segmentation" / BUNDLED_MODEL_NAME  # pyproject's data-files
S3_SCHEME = "s3://"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def default_model_uri() -> str:
    """The first bundled model that exists (checkout, image, installed); the checkout path if none does."""
    for candidate in (CHECKOUT_MODEL, PACKAGED_MODEL, INSTALLED_MODEL):
        if candidate.is_file():
            return str(candidate)
    return str(CHECKOUT_MODEL)


class Settings(BaseSettings):
    """The service's knobs; the defaults serve the bundled model within AWS Lambda's limits."""

    model_config = SettingsConfigDict(case_sensitive=True, frozen=True)

    # The model: a local ONNX file or s3://bucket/key, optionally pinned to its sha256.
    MODEL_URI: str = Field(default_factory=default_model_uri)
    MODEL_SHA256: str | None = None
    # Lambda's only writable disk is /tmp. nosec B108: app.aws.model_store refuses a cache directory other users
    # own or may write in, so nothing planted in a shared /tmp is served.
    MODEL_CACHE_DIR: Path = Path("/tmp/models")  # nosec B108
    MODEL_RETRY_SECONDS: float = Field(default=5.0, gt=0)  # back-off before a failed load is retried

    # HTTP limits. Lambda carries 6 MB synchronously and base64 inflates binary bodies
    # by 4/3, leaving ~4.4 MB of raw image:
    # https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html
    MAX_UPLOAD_BYTES: int = Field(default=4_400_000, gt=0)
    # imgproxy's default cap on decoded pixels (IMGPROXY_MAX_SRC_RESOLUTION, 50 MP).
    MAX_PIXELS: int = Field(default=50_000_000, gt=0)
    # A result over this many bytes gets 413 instead of a response Lambda cannot return.
    # None: no cap (local serving); ~4_400_000 behind API Gateway + Lambda.
    MAX_RESPONSE_BYTES: int | None = Field(default=None, gt=0)
    # POST /predict/batch: files per request. Their bytes share MAX_UPLOAD_BYTES (one request body).
    MAX_BATCH_FILES: int = Field(default=16, gt=0)

    # The S3 trigger reads objects directly, so it may take bigger images.
    S3_MAX_UPLOAD_BYTES: int = Field(default=50_000_000, gt=0)
    S3_MAX_PIXELS: int = Field(default=100_000_000, gt=0)

    # The upload flow (POST /uploads, GET /results/{id}): presigned S3 POSTs into this bucket.
    # Unset: the two routes answer 503 saying so. Presigned URLs live at most 7 days (SigV4), and no
    # longer than the credentials that signed them (a Lambda role's: hours).
    UPLOAD_BUCKET: str | None = None
    UPLOAD_URL_TTL_S: int = Field(default=900, gt=0, le=604_800)
    # The most one presigned POST admits (None: S3_MAX_UPLOAD_BYTES, which it may not exceed).
    UPLOAD_MAX_BYTES: int | None = Field(default=None, gt=0)

    # Who may call the protected routes off AWS (on AWS, API Gateway's authorizer decides: template.yaml).
    # A comma-separated list, or a file with one key per line (keys stay out of process listings).
    # Neither set: the routes are open, as `make serve` is.
    API_KEYS: str | None = None
    API_KEYS_FILE: Path | None = None

    # Overlay defaults; requests may override each. A colour is "#rrggbb", "rrggbb" or "r,g,b".
    OVERLAY_COLOR: Annotated[ColorValue, NoDecode] = DEFAULT_COLOR  # NoDecode: a string, not JSON
    OVERLAY_ALPHA: Alpha = DEFAULT_ALPHA

    LOG_LEVEL: str = "INFO"

    # Execution providers, in order of preference (app.core.inference.providers): cuda, tensorrt, openvino, dnnl, cpu.
    # Those this onnxruntime build lacks are skipped; none available refuses the model (503).
    INFERENCE_PROVIDERS: str = "cpu"
    CUDA_DEVICE_ID: int = Field(default=0, ge=0)
    CUDA_ARENA_EXTEND_STRATEGY: Literal["kNextPowerOfTwo", "kSameAsRequested"] = "kSameAsRequested"
    CUDNN_CONV_ALGO_SEARCH: Literal["EXHAUSTIVE", "HEURISTIC", "DEFAULT"] = "EXHAUSTIVE"

    # Concurrency. None: the CPUs this process may use (affinity and cgroup quota).
    INFERENCE_THREADS: int | None = Field(default=None, gt=0)  # onnxruntime intra-op threads
    MAX_CONCURRENCY: int | None = Field(default=None, gt=0)  # requests decoded and segmented at once
    MAX_QUEUE: int = Field(default=8, ge=0)  # requests waiting beyond those; more get 429
    # Memory the HTTP server's requests are admitted against, in MB (10^6 bytes), by their declared pixels
    # (app.core.resources.budget): over it they wait in the queue; one that never fits gets 413. Default: this process's
    # cgroup memory limit, else the Lambda function's memory, else the machine's physical memory.
    MEMORY_BUDGET_MB: int = Field(default_factory=default_budget_mb, gt=0)

    @field_validator("MODEL_URI")
    @classmethod
    def _absolute_local_path(cls, value: str) -> str:
        """A local path is made absolute against the working directory now, so errors name the file tried."""
        return value if value.startswith(S3_SCHEME) else str(Path(value).expanduser().absolute())

    @field_validator("INFERENCE_PROVIDERS")
    @classmethod
    def _known_providers(cls, value: str) -> str:
        return ",".join(parse_preference(value))

    @property
    def providers(self) -> tuple[str, ...]:
        return parse_preference(self.INFERENCE_PROVIDERS)

    @property
    def cuda_options(self) -> CudaOptions:
        return CudaOptions(self.CUDA_DEVICE_ID, self.CUDA_ARENA_EXTEND_STRATEGY, self.CUDNN_CONV_ALGO_SEARCH)

    @field_validator("API_KEYS_FILE")
    @classmethod
    def _readable_keys_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"API_KEYS_FILE {value} is not a readable file: one API key per line")
        return value

    @model_validator(mode="after")
    def _upload_cap_within_the_trigger_limit(self) -> Settings:
        if self.UPLOAD_MAX_BYTES is not None and self.UPLOAD_MAX_BYTES > self.S3_MAX_UPLOAD_BYTES:
            raise ValueError(f"UPLOAD_MAX_BYTES {self.UPLOAD_MAX_BYTES} is over S3_MAX_UPLOAD_BYTES "
                             f"{self.S3_MAX_UPLOAD_BYTES}: the upload trigger would refuse such uploads")
        return self

    @property
    def upload_max_bytes(self) -> int:
        return self.UPLOAD_MAX_BYTES or self.S3_MAX_UPLOAD_BYTES

    def render_defaults(self) -> RenderOptions:
        """What a request that sets no option gets: the overlay's colour and opacity from here."""
        return RenderOptions(color=self.OVERLAY_COLOR, alpha=self.OVERLAY_ALPHA)

    def decode_limits(self) -> DecodeLimits:
        """The HTTP limits: what fits through API Gateway and Lambda's payload."""
        return DecodeLimits(max_bytes=self.MAX_UPLOAD_BYTES, max_pixels=self.MAX_PIXELS)

    def stored_object_limits(self) -> DecodeLimits:
        """The limits for objects read from S3 (and local files), which never pass through a payload."""
        return DecodeLimits(max_bytes=self.S3_MAX_UPLOAD_BYTES, max_pixels=self.S3_MAX_PIXELS)

    def api_keys(self) -> tuple[str, ...]:
        """API_KEYS and the lines of API_KEYS_FILE (blank lines and # comments skipped), read now."""
        listed = (self.API_KEYS or "").split(",")
        filed = self.API_KEYS_FILE.read_text().splitlines() if self.API_KEYS_FILE else []
        keys = (line.strip() for line in [*listed, *filed])
        return tuple(dict.fromkeys(key for key in keys if key and not key.startswith("#")))

    @field_validator("LOG_LEVEL")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.strip().upper()
        if level not in LOG_LEVELS:
            raise ValueError(f"LOG_LEVEL {value!r} is not one of {', '.join(LOG_LEVELS)}")
        return level


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's settings, read from the environment once."""
    return Settings()
