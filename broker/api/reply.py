"""``Reply``: the answer type of the handlers on the hot paths (``server.serialize`` sends it)."""

from __future__ import annotations

from multidict import CIMultiDict


class Reply:
    """A whole answer — status, body, content type, headers — for the handlers on the hot paths.

    ``web.Response`` is built for streaming and cookies; its constructor alone cost ~8 µs of a
    ~100 µs cached GET. This server sends either (``serialize``); headers stay a ``CIMultiDict`` so
    ``headers.add("Link", ...)`` works as on a ``web.Response``."""

    __slots__ = ("status", "body", "content_type", "headers")
    keep_alive = None  # as web.Response: the server decides

    def __init__(self, body: bytes = b"", status: int = 200, content_type: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers: CIMultiDict[str] = CIMultiDict(headers) if headers else CIMultiDict()
