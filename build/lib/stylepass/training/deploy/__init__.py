"""From a training run to a deployable model: safetensors + config.json, and ONNX."""
