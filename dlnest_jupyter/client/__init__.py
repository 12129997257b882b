"""Runs in the user's kernel: REST client, server discovery and the %dlnest magics."""
