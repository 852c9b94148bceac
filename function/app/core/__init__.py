"""The core: image bytes in, encoded result out, with no web or AWS library.

imaging (bytes -> RGB, limits first) -> segmenter (one onnxruntime session) ->
drawing (overlay, mask) -> encoding (PNG), composed by ``pipeline.render``, the one
function every entry point calls. pyproject's import-linter contracts keep FastAPI,
Starlette, Mangum, boto3, botocore and Powertools out of this package.
"""
