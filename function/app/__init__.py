"""The segmentation service: FastAPI app, Lambda handler, S3 trigger. Never imports torch."""
