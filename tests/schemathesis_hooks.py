"""Schemathesis hooks for tests/test_schemathesis.py (named by `hooks` in schemathesis.toml).

Resumable upload chunks are `application/offset+octet-stream` (the tus media type): raw bytes, sent the way
schemathesis sends `application/octet-stream`."""

import schemathesis

schemathesis.serializer.alias("application/offset+octet-stream", "application/octet-stream")
