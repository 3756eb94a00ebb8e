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
            names = list(extracted)
            self.groups.set(Group.objects.filter(name__in=names))  # type: ignore[attr-defined]
            # as portal.accounts.services keeps it: the Administrator role comes with the site admin
            if "Administrator" in names and not self.is_staff:  # type: ignore[attr-defined]
                self.is_staff = True  # type: ignore[attr-defined]
                self.save(update_fields=["is_staff"])  # type: ignore[attr-defined]
