"""The segmentation service. Never imports torch.

Packages by layer (import-linter contracts in pyproject.toml keep the arrows pointing down):

    entry points   main (ASGI app, uvicorn), lambda_api, lambda_upload; runtime (the shared composition root)
    http           create_app: routes, schemas, errors, body limit, work queue
    aws            Lambda adapters (Mangum, S3 trigger), model store, S3 client, logs and metrics
    core           settings, options, imaging, model contract, segmenter, drawing, encoding, pipeline
"""
