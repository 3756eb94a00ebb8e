"""Django's guard against synchronous ORM calls from async code is on outside the browser tests."""

from __future__ import annotations

import os

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core.exceptions import SynchronousOnlyOperation

pytestmark = pytest.mark.django_db


def test_the_async_safety_check_is_on_for_ordinary_tests() -> None:
    assert "DJANGO_ALLOW_ASYNC_UNSAFE" not in os.environ

    async def query_from_async_code() -> int:
        return User.objects.count()

    with pytest.raises(SynchronousOnlyOperation):
        async_to_sync(query_from_async_code)()
