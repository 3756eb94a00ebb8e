from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import factory
from django.contrib.auth.models import Group, User

DEFAULT_PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    password = factory.django.Password(DEFAULT_PASSWORD)

    @factory.post_generation
    def roles(self, create: bool, extracted: Iterable[str] | None, **kwargs: Any) -> None:
        if create and extracted is not None:
            self.groups.set(Group.objects.filter(name__in=list(extracted)))  # type: ignore[attr-defined]
