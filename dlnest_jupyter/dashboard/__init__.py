"""ipywidgets panels (queue, GPUs, outputs, analyzers); reads through the client only."""
