"""The API dispatcher, written once for both transports (the server's handler and the client's
in-process calls): `dispatcher.py` (matching, the error-to-status table), `routes.py` (the routes
of DESIGN.md section 6 as data, and the verbs behind them), `requests.py` (reading a request's
query and body), `call.py` (a matched request and its reply)."""

from .dispatcher import DEFAULT_MAX_BODY_BYTES, Api

__all__ = ["DEFAULT_MAX_BODY_BYTES", "Api"]
