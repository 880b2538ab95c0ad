"""The demo organization a newcomer lands in on first start.

Passwords are generated on first start and kept in var/ (git-ignored, mode 600), so they are
printed on every start but never live in the repository.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction

from accounts.models import Membership, Organization, Role

DEMO_ORG_NAME = "Acme Shoes"
DEMO_ORG_SLUG = "acme-shoes"
DEMO_ADMIN_EMAIL = "admin@acme-shoes.example"
DEMO_AGENT_EMAIL = "agent@acme-shoes.example"


@dataclass
class DemoLogins:
    organization: Organization
    admin_email: str
    admin_password: str
    agent_email: str
    agent_password: str


def _credentials_file() -> Path:
    return Path(settings.DATA_DIR) / "demo-credentials.json"


def _load_or_create_passwords() -> dict[str, str]:
    path = _credentials_file()
    if path.exists():
        return json.loads(path.read_text())
    passwords = {DEMO_ADMIN_EMAIL: secrets.token_urlsafe(9), DEMO_AGENT_EMAIL: secrets.token_urlsafe(9)}
    path.write_text(json.dumps(passwords, indent=2))
    path.chmod(0o600)
    return passwords


@transaction.atomic
def ensure_demo_organization() -> DemoLogins:
    """Create Acme Shoes with an admin and an agent (idempotent)."""
    passwords = _load_or_create_passwords()
    organization, _ = Organization.objects.get_or_create(slug=DEMO_ORG_SLUG, defaults={"name": DEMO_ORG_NAME})
    User = get_user_model()
    for email, role, first in ((DEMO_ADMIN_EMAIL, Role.ADMIN, "Ada"), (DEMO_AGENT_EMAIL, Role.AGENT, "Sam")):
        user, created = User.objects.get_or_create(
            username=email, defaults={"email": email, "first_name": first, "last_name": "(demo)"}
        )
        if created or not user.check_password(passwords[email]):
            user.set_password(passwords[email])
            user.save()
        Membership.objects.get_or_create(user=user, organization=organization, defaults={"role": role})
    return DemoLogins(organization, DEMO_ADMIN_EMAIL, passwords[DEMO_ADMIN_EMAIL],
                      DEMO_AGENT_EMAIL, passwords[DEMO_AGENT_EMAIL])
