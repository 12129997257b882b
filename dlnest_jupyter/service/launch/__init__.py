"""Where tasks run: `executor.py` (the Executor seam, and this machine's processes, started by
`zygote_client.py`'s pre-warmed process) and `backend.py` (the one setting that chooses the
backend: this machine, a Ray cluster, or one of your own)."""
