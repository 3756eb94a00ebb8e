from __future__ import annotations

from typing import Any

import pytest

from portal.customers.demo import DEMO_CUSTOMERS, demo_customers_ensure
from portal.customers.models import Customer
from portal.customers.selectors import customers_visible_to
from portal.memory.demo import DEMO_MEMORIES, demo_memories_ensure
from portal.memory.models import MemoryItem
from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_demo_customers_and_memories_are_created_once(sam: Any) -> None:
    UserFactory.create(username="staff", roles=["Staff"])
    UserFactory.create(username="admin", roles=["Administrator"])
    assert demo_customers_ensure() == len(DEMO_CUSTOMERS)
    assert demo_customers_ensure() == 0
    assert demo_memories_ensure() == len(DEMO_MEMORIES)
    assert demo_memories_ensure() == 0
    assert all(customer.interactions.exists() for customer in Customer.objects.all())
    restricted = Customer.objects.get(restricted=True)
    assert not customers_visible_to(user=sam).filter(pk=restricted.pk).exists()
    assert MemoryItem.objects.filter(status="approved", scope="customer").count() == 2
