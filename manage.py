#!/usr/bin/env python3
"""Django's command-line utility for the Hybrid AI portal."""

from __future__ import annotations

import os
import sys


def main() -> None:
    import portal.offline  # noqa: F401  (privacy switches before anything else is imported)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    if sys.argv[1:2] == ["run"] and "--dev" in sys.argv:
        os.environ["PORTAL_DEBUG"] = "1"  # must be set before the settings are read
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
