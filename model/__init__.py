"""The PyTorch side of the project: architecture, data, training, export.

Nothing under ``function/`` imports this package; torch never enters the Lambda image.
"""
