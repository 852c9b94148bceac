"""What the routes are given: the app's settings, model holder and work queue, and each request's options.

``create_app`` keeps those objects (and the default ``RenderOptions``) on ``app.state``; these getters hand them to
routes as ``Annotated`` dependencies, so signatures read like prose and the
middleware and the routes always see the same settings object.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Query, Request
from pydantic import ValidationError

from app.core.inference.holder import ModelHolder
from app.core.options import RenderOptions
from app.core.settings import Settings
from app.http.errors import invalid_request
from app.http.negotiation import negotiate_format
from app.http.schemas import PredictOptions
from app.http.work_queue import WorkQueue


def get_settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def get_holder(request: Request) -> ModelHolder:
    return request.app.state.holder  # type: ignore[no-any-return]


def get_work_queue(request: Request) -> WorkQueue:
    return request.app.state.work_queue  # type: ignore[no-any-return]


def get_render_defaults(request: Request) -> RenderOptions:
    return request.app.state.render_defaults  # type: ignore[no-any-return]


SettingsDep = Annotated[Settings, Depends(get_settings)]
RenderDefaultsDep = Annotated[RenderOptions, Depends(get_render_defaults)]
HolderDep = Annotated[ModelHolder, Depends(get_holder)]
WorkQueueDep = Annotated[WorkQueue, Depends(get_work_queue)]


def get_render_options(options: Annotated[PredictOptions, Query()], defaults: RenderDefaultsDep,
                       request: Request) -> RenderOptions:
    """The server's defaults (built once, from its settings) with the request's options on top; invalid: 422.

    Without ``format``, the ``Accept`` header chooses (``app.http.negotiation``).
    """
    given = options.model_dump()
    given["format"] = options.format or negotiate_format(request.headers.get("accept"), options.output)
    try:
        return defaults.with_overrides(given)
    except ValidationError as invalid:
        raise invalid_request(invalid, "query") from None


RenderOptionsDep = Annotated[RenderOptions, Depends(get_render_options)]
