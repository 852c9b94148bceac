"""Upload an ONNX model to the stack's bucket under models/ and print the parameters to deploy with.

    make publish-model                                   # model/weights/unet-int8.onnx -> stack unet-segmentation
    python -m scripts.publish_model --model runs/mine/unet.onnx --stack my-stack
    python -m scripts.publish_model --bucket my-bucket   # any S3 endpoint (AWS_ENDPOINT_URL_S3 works)

The key is content-addressed (models/unet-<sha256[:12]>.onnx): a new model gets a new
key, so environments still running keep loading the file their MODEL_SHA256 names
until the redeploy switches them over. The sha256 also travels as object metadata.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from pathlib import Path

import boto3

REPO = Path(__file__).resolve().parents[1]
DEFAULT_MODEL = REPO / "model" / "weights" / "unet-int8.onnx"  # the served default (app.core.settings)
DEFAULT_STACK = "unet-segmentation"
MODELS_PREFIX = "models/"

log = logging.getLogger("publish_model")


def file_sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def model_key(path: Path, sha256: str) -> str:
    return f"{MODELS_PREFIX}{path.stem}-{sha256[:12]}{path.suffix}"


def stack_bucket(stack: str) -> str:
    """The BucketName output of the deployed stack."""
    outputs = boto3.client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0].get("Outputs", [])
    for output in outputs:
        if output["OutputKey"] == "BucketName":
            return output["OutputValue"]
    raise SystemExit(f"stack {stack} has no BucketName output: deploy template.yaml first (sam deploy --guided)")


def publish(model: Path, bucket: str) -> tuple[str, str]:
    """Uploads ``model``; returns (key, sha256)."""
    sha256 = file_sha256(model)
    key = model_key(model, sha256)
    extra = {"Metadata": {"sha256": sha256}, "ContentType": "application/octet-stream"}
    boto3.client("s3").upload_file(str(model), bucket, key, ExtraArgs=extra)
    log.info("uploaded %s (%d bytes) to s3://%s/%s", model, model.stat().st_size, bucket, key)
    return key, sha256


def deploy_hint(bucket: str, key: str, sha256: str) -> str:
    return "\n".join([
        f"ModelKey={key}",
        f"ModelSha256={sha256}",
        "",
        "Deploy with:",
        f'  sam deploy --parameter-overrides ModelKey="{key}" ModelSha256="{sha256}"',
        "Or serve it locally:",
        f"  MODEL_URI=s3://{bucket}/{key} MODEL_SHA256={sha256} make serve",
    ])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--stack", default=DEFAULT_STACK, help="find the bucket in this stack's outputs")
    parser.add_argument("--bucket", help="upload here instead of the stack's bucket")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if not args.model.is_file():
        raise SystemExit(f"no model at {args.model}: pass --model PATH")
    bucket = args.bucket or stack_bucket(args.stack)
    key, sha256 = publish(args.model, bucket)
    print(deploy_hint(bucket, key, sha256))  # noqa: T201


if __name__ == "__main__":
    main()
