"""The README's pictures, made by the service itself: a real photo's overlay, mask and cutout.

    make serve &
    python -m scripts.readme_pictures --url http://127.0.0.1:8000 events/images/person.jpg --out docs/pictures

Posts the photo to ``POST /predict`` once per output, with the API's defaults otherwise, and
writes ``<stem>.jpg`` (the photo's own bytes), ``<stem>.overlay.jpg``, ``<stem>.mask.png``
and ``<stem>.cutout.webp`` (WebP keeps the transparency at a tenth of PNG's size). The last
line printed is one JSON object: the files and the model that made them (from /health).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import requests

TIMEOUT_S = 120
OUTPUTS = {  # file suffix -> the request's options
    "overlay.jpg": {"output": "overlay", "format": "jpeg", "quality": "90"},
    "mask.png": {"output": "mask"},
    "cutout.webp": {"output": "cutout", "format": "webp", "quality": "90"},
}


def fetch(url: str, photo: Path, options: dict[str, str]) -> bytes:
    response = requests.post(f"{url}/predict", params=options, timeout=TIMEOUT_S,
                             files={"file": (photo.name, photo.read_bytes(), "image/jpeg")})
    response.raise_for_status()
    return response.content


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("photo", type=Path)
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--out", type=Path, default=Path("docs/pictures"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [args.out / f"{args.photo.stem}.jpg"]
    shutil.copyfile(args.photo, written[0])
    for suffix, options in OUTPUTS.items():
        written.append(args.out / f"{args.photo.stem}.{suffix}")
        written[-1].write_bytes(fetch(args.url, args.photo, options))
    model = requests.get(f"{args.url}/health", timeout=TIMEOUT_S).json()["model"]
    print(json.dumps({"files": [str(path) for path in written], "model": model["name"], "version": model["version"]}))  # noqa: T201


if __name__ == "__main__":
    main()
