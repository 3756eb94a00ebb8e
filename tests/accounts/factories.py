from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import factory
from django.contrib.auth.models import Group, User

DEFAULT_PASSWORD = "correct horse battery staple"


def _grant_roles(user: User, create: bool, extracted: Iterable[str] | None, **kwargs: Any) -> None:
    """UserFactory.create(roles=[...]): the user joins those groups."""
    if create and extracted is not None:
        names = list(extracted)
        user.groups.set(Group.objects.filter(name__in=names))
        # as portal.accounts.services keeps it: the Administrator role comes with the site admin
        if "Administrator" in names and not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])


class UserFactory(factory.django.DjangoModelFactory[User]):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    first_name = factory.Faker("first_name")
    last_name = factory.Faker("last_name")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.test")
    password = factory.django.Password(DEFAULT_PASSWORD)

    roles = factory.PostGeneration(_grant_roles)
