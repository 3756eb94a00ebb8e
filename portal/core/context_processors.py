from __future__ import annotations

from typing import Any

from django.http import HttpRequest

from portal.core.navigation import navigation_bar, navigation_for


def navigation(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None:
        return {"navigation": [], "navigation_bar": []}
    current = getattr(getattr(request, "resolver_match", None), "view_name", "")
    links = navigation_for(user)
    return {"navigation": links, "navigation_bar": navigation_bar(links, current), "current_view": current}
