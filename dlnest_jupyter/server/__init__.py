"""The jupyter_server extension and its REST API. Imports service, never torch or user code."""
