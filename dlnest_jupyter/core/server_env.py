"""The environment variables through which a Jupyter server's kernels find its scheduler.

The server extension exports them to every kernel it starts; the client reads them first
(`client/discovery.py`). Named here, below both, so neither imports the other for two strings.
"""

from __future__ import annotations

URL_ENV = "DLNEST_SERVER_URL"  # http://127.0.0.1:<port><base_url>
TOKEN_ENV = "DLNEST_SERVER_TOKEN"  # the server's token, or a key valid for /dlnest/api/ only
