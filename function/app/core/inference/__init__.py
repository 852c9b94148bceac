"""The model at run time: its metadata contract, the onnxruntime session and providers, the holder that loads it."""
