"""The demo organisation created on first start: one user per role, with passwords generated once.

The passwords are kept in var/demo_credentials.json (readable by the owner only) so the run command can
print them at every start; delete the demo users (or set PORTAL_DEMO=0) for a real deployment.
Nobody in the demo is a superuser: the demo administrator has the Administrator role and with it the
site admin (is_staff), and nothing more; an operator who needs a superuser runs `manage.py createsuperuser`.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.db import transaction

from audit.services import audit
from governance.roles import ADMINISTRATOR, AUDITOR, GOVERNANCE_OFFICER, STAFF


@dataclass(frozen=True)
class DemoPerson:
    username: str
    first_name: str
    last_name: str
    roles: tuple[str, ...]

    @property
    def is_staff(self) -> bool:
        return ADMINISTRATOR in self.roles  # site-admin access follows the role (portal.accounts.services)


DEMO_PEOPLE = (
    DemoPerson("admin", "Ada", "Admin", (ADMINISTRATOR, STAFF)),
    DemoPerson("officer", "Grace", "Governance", (GOVERNANCE_OFFICER, STAFF)),
    DemoPerson("auditor", "Alan", "Auditor", (AUDITOR,)),
    DemoPerson("staff", "Sam", "Staff", (STAFF,)),
)


def _credentials_path() -> Path:
    return Path(settings.VAR_DIR) / "demo_credentials.json"


def demo_credentials() -> dict[str, str]:
    path = _credentials_path()
    if not path.exists():
        return {}
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _save_credentials(credentials: dict[str, str]) -> None:
    path = _credentials_path()
    path.touch(mode=0o600)
    path.write_text(json.dumps(credentials, indent=2), encoding="utf-8")


@transaction.atomic
def demo_organisation_ensure() -> dict[str, str]:
    """Create the demo users that do not exist yet; return username -> password for all of them."""
    credentials = demo_credentials()
    for person in DEMO_PEOPLE:
        if User.objects.filter(username=person.username).exists():
            continue
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(
            username=person.username,
            password=password,
            first_name=person.first_name,
            last_name=person.last_name,
            email=f"{person.username}@demo.invalid",
            is_staff=person.is_staff,
        )
        user.groups.set(Group.objects.filter(name__in=person.roles))
        credentials[person.username] = password
        audit(
            actor=None,
            actor_username="system",
            action="demo.user_created",
            target=user,
            details={"roles": sorted(person.roles)},
        )
    _save_credentials(credentials)
    # The demo knowledge base (knowledge app): handbook, policies and FAQ, queued for ingestion once.
    from knowledge.demo import demo_knowledge_ensure

    demo_knowledge_ensure()
    # Demo assistant profiles (assistant app): "Handbook helper" (routine) and "Analyst" (analyze).
    from portal.assistant.demo import demo_profiles_ensure

    demo_profiles_ensure()
    # Demo customers with interaction histories, and a few approved memories (customers and memory apps).
    from portal.customers.demo import demo_customers_ensure
    from portal.memory.demo import demo_memories_ensure

    demo_customers_ensure()
    demo_memories_ensure()
    # Local models (portal/ml): example questions, labelled knowledge bases, and a training run per model.
    from portal.ml.demo import demo_ml_ensure

    demo_ml_ensure()
    # Workflows (portal/workflows): a weekly customer follow-up and new-document triage.
    from portal.workflows.demo import demo_workflows_ensure

    demo_workflows_ensure()
    return {name: credentials[name] for name in credentials if User.objects.filter(username=name).exists()}
