"""How long browser tests wait for a state before they fail: generous ceilings, not expected durations.

Every wait polls for the state it needs (Playwright's expect, wait_for_url, expect_response); these only
bound how long that may take on a loaded two-core machine, so a slow run is not a failed run.
"""

from __future__ import annotations

PAGE_WAIT_MS = 30_000  # a page load, a form post or an htmx swap
WORK_WAIT_MS = 180_000  # work in another process: the server's first answer loads the local models, ingestion
