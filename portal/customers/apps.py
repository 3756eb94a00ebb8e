from __future__ import annotations

from django.apps import AppConfig


class CustomersConfig(AppConfig):
    name = "portal.customers"
    label = "customers"
    verbose_name = "Customers"

    def ready(self) -> None:
        from portal.customers.abstraction import register_abstraction_describer
        from portal.customers.entities import register_known_entity_source

        # Every customer value becomes a known entity for the egress gate's detector.
        register_known_entity_source()

        from audit import links
        from portal.customers.selectors import customers_visible_to

        links.register_visibility(
            "customers.customer", links.numeric_check(lambda viewer: customers_visible_to(user=viewer))
        )
        # The gate's `abstract` action describes a customer by their tier, a record's address by its city.
        register_abstraction_describer()
