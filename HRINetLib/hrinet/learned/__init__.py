"""The learned methods: networks, the default model, weights files and inference (torch)."""
