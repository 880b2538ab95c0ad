"""Migrations, run as a deployment runs them: forward from an empty database, and forward over a
database that already holds an organization's data (written with the models of an early migration).
scripts/test.sh runs these on SQLite and on PostgreSQL, where DDL and data updates share a transaction
differently."""

from __future__ import annotations

import pytest
from django.apps import apps as current_apps
from django.db import connection
from django.db.migrations.autodetector import MigrationAutodetector
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.state import ProjectState

pytestmark = pytest.mark.django_db(transaction=True)

OUR_APPS = ("accounts", "store", "finetune", "knowledge", "chat")
# The earliest state where a support conversation can exist: the first chat migration and what it needs.
EARLY = [
    ("accounts", "0001_initial"),
    ("store", "0003_tunedmodel_default_system_prompt_deployment_apikey_and_more"),
    ("finetune", "0002_initial"),
    ("knowledge", None),
    ("chat", "0001_initial"),
]


def migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()  # what the previous run applied
    executor.migrate(targets)
    return executor


def latest():
    return MigrationExecutor(connection).loader.graph.leaf_nodes()


@pytest.fixture
def back_to_latest():
    """However a test ends, the database is left fully migrated for the tests after it."""
    yield
    migrate(latest())


def our_tables() -> set[str]:
    return {model._meta.db_table for app in OUR_APPS for model in current_apps.get_app_config(app).get_models()}


def test_it_migrates_forward_from_an_empty_database(back_to_latest):
    migrate([(app, None) for app in OUR_APPS])
    with connection.cursor() as cursor:
        present = set(connection.introspection.table_names(cursor))
    assert not our_tables() & present

    executor = migrate(latest())

    with connection.cursor() as cursor:
        present = set(connection.introspection.table_names(cursor))
    assert our_tables() <= present
    assert not MigrationExecutor(connection).migration_plan(latest())
    # The migrations describe the models exactly: nothing left for makemigrations to write.
    changes = MigrationAutodetector(
        executor.loader.project_state(), ProjectState.from_apps(current_apps)).changes(graph=executor.loader.graph)
    assert {app: [m.name for m in migrations] for app, migrations in changes.items() if app in OUR_APPS} == {}


def seed_early_data(old) -> dict:
    """An organization with a member, an API key, a widget and a conversation with a private note, as the
    site stored them at the EARLY state."""
    User = old.get_model("auth", "User")
    user = User.objects.create(username="early@alice-shoes.example", email="early@alice-shoes.example",
                               password="!")
    organization = old.get_model("accounts", "Organization").objects.create(name="Alice Shoes", slug="alice-shoes")
    old.get_model("accounts", "Membership").objects.create(user=user, organization=organization, role="admin")
    base = old.get_model("store", "FoundationModel").objects.create(
        slug="early-chat", display_name="Early Chat", family="llama", architecture="LlamaForCausalLM",
        supports_dialogue=True, source_kind="local", source="/models/early-chat")
    deployment = old.get_model("store", "Deployment").objects.create(
        organization=organization, name="Support bot", slug="support-bot", task="dialogue", base_model=base,
        max_tokens=200)
    key = old.get_model("store", "ApiKey").objects.create(
        organization=organization, name="shop", prefix="gs-early", key_hash="0" * 64, requests_per_minute=77,
        tokens_per_minute=5000)
    key.deployments.add(deployment)
    widget = old.get_model("chat", "Widget").objects.create(organization=organization, deployment=deployment)
    visitor = old.get_model("chat", "Visitor").objects.create(widget=widget, name="Carol")
    conversation = old.get_model("chat", "Conversation").objects.create(
        organization=organization, widget=widget, visitor=visitor, deployment=deployment, status="assigned",
        assignee=user, last_seq=4)
    Message = old.get_model("chat", "Message")
    script = [("customer", "Where is my order?", False), ("bot", "Let me check.", False),
              ("agent", "VIP customer, be quick", True), ("agent", "It ships today.", False)]
    for seq, (author, text, internal) in enumerate(script, start=1):
        Message.objects.create(conversation=conversation, seq=seq, author=author, text=text, internal=internal,
                               agent=user if author == "agent" else None)
    return {"organization": organization.pk, "conversation": conversation.pk, "key": key.pk, "script": script}


def test_it_keeps_the_data_of_a_running_site_when_migrating_forward(back_to_latest):
    executor = migrate(EARLY)
    seeded = seed_early_data(executor.loader.project_state([t for t in EARLY if t[1]]).apps)

    migrate(latest())

    from accounts.models import Organization
    from chat.models import Conversation
    from store.models import ApiKey

    organization = Organization.objects.get(pk=seeded["organization"])
    assert organization.name == "Alice Shoes"
    assert [m.role for m in organization.memberships.all()] == ["admin"]
    key = ApiKey.objects.get(pk=seeded["key"])
    assert (key.requests_per_minute, key.tokens_per_minute) == (77, 5000)
    assert [d.slug for d in key.deployments.all()] == ["support-bot"]
    conversation = Conversation.objects.get(pk=seeded["conversation"])
    assert (conversation.status, conversation.last_seq, conversation.widget.organization_id) == (
        "assigned", 4, organization.pk)
    stored = [(m.author, m.text, m.internal) for m in conversation.messages.order_by("seq")]
    assert stored == seeded["script"]
    assert [m.seq for m in conversation.messages.order_by("seq")] == [1, 2, 3, 4]
