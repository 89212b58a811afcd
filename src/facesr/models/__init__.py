"""Networks and the saved-model format (config.json plus safetensors)."""
