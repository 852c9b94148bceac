"""The HTTP layer: ``create_app`` builds the FastAPI app (routes, schemas, errors, body limit, work queue).

It knows nothing of Lambda: Mangum wraps the app in ``app.lambda_api``.
"""
