"""Pure Python, no Jupyter and no torch: configs, save packages, checkpoint retention, errors."""
