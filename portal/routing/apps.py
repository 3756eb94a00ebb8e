from __future__ import annotations

from django.apps import AppConfig


class RoutingConfig(AppConfig):
    name = "portal.routing"
    label = "routing"
    verbose_name = "Model routing"

    def ready(self) -> None:
        from governance.simulator import register_destination_source
        from portal.routing.selectors import catalog_destinations

        # The governance officers' simulator offers the catalog's enabled models as destinations.
        register_destination_source("routing", catalog_destinations)
