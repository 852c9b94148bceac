"""``unet-segment``: the command line for local files and folders (``pyproject``'s console script ``app.cli:main``).

An entry point, beside the Lambda entries: ``main`` (argument parsing, the model) in
``app.cli.command``, what to read and where to write in ``app.cli.inputs``, the run in
``app.cli.runner``. Every image goes through the one pipeline, ``app.core.pipeline.render``.
"""

from app.cli.command import main

__all__ = ["main"]
