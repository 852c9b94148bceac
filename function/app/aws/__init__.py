"""The AWS layer: the Lambda adapters (Mangum for HTTP, the S3 upload trigger), the model store, the S3 client.

It imports no module of the HTTP layer: the HTTP function's entry hands it the ASGI app.
"""
