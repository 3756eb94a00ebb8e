"""Test-client responses as what they are: django-stubs types every response of the test client as a plain
one, so a streaming response's body is read through these (which also check that it did stream)."""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.http.response import HttpResponseBase


def streaming(response: HttpResponseBase) -> StreamingHttpResponse:
    """The response, checked to be a streaming one (a download, an export, a streamed answer)."""
    assert isinstance(response, StreamingHttpResponse), f"not a streaming response: {type(response).__name__}"
    return response


def streamed(response: HttpResponseBase) -> bytes:
    """The whole body of a streaming response (of the synchronous test client)."""
    return b"".join(streaming(response))
