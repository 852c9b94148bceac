"""Structured JSON logs: every ``app.*`` stdlib logger writes through a Powertools formatter.

Modules log with ``logging.getLogger(__name__)`` and pass fields in ``extra``;
``configure_logging`` gives the ``app`` logger the handler of a Powertools
``Logger`` (https://docs.powertools.aws.dev/lambda/python/latest/core/logger/), so
locally under uvicorn and on Lambda alike each line is one JSON object. Nothing
here ever logs image bytes: only sizes, options, timings and model identity.
"""

from __future__ import annotations

import logging
import os

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging.utils import copy_config_to_registered_loggers

SERVICE = os.getenv("POWERTOOLS_SERVICE_NAME", "unet-segmentation")
APP_LOGGER = "app"


def configure_logging(level: str) -> Logger:
    """JSON output at ``level`` for the ``app`` logger tree; returns the Powertools logger."""
    powertools = Logger(service=SERVICE, level=level)
    logging.getLogger(APP_LOGGER)  # registered, so the copy below finds it
    copy_config_to_registered_loggers(source_logger=powertools, include={APP_LOGGER})
    return powertools
