"""The HTTP function's Lambda entry (template.yaml: ``ImageConfig: Command: ["app.lambda_api.handler"]``).

The app of ``app.main`` (built, with its model, at init) behind Mangum: API Gateway
HTTP API v2 and v1, REST API and ALB events.
"""

from __future__ import annotations

from app.aws.lambda_http import make_http_handler
from app.main import app

handler = make_http_handler(app)
