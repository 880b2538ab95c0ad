"""The permission matrix: every route of the URLconf (the admin from its registry) and of the WebSocket
routing has a row in tests/permission_matrix.py, and every page and /v1 route answers each role as its
row says; a refused POST changes nothing and a refused visitor is sent to sign in (or to create an
organization); nothing another organization may read carries the owner's data.

The world (tests/permission_world.py) is built once for this module inside a transaction that is rolled
back at the end; each test runs in a savepoint of it, so one test's deletions never reach the next.
"""

from __future__ import annotations

import array
import json

import pytest
from asgiref.sync import async_to_sync
from django.apps import apps
from django.contrib import admin
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from accounts.scoping import is_organization_owned, scope_to
from store.inference.client import StreamEvent
from tests.factories import sentiment_csv_bytes
from tests.permission_matrix import ADMIN, API, API_WRITES, PAGE_WRITES, PAGES, SOCKETS, Expect
from tests.permission_world import ALICE_ORIGIN, FAQ, KEY_ROLES, MARKER, PAGE_ROLES, World, build_world

pytestmark = pytest.mark.django_db
FIX_HINT = "add it to tests/permission_matrix.py with the status each role must get"


# --- what exists ---------------------------------------------------------------------------------


def http_routes() -> dict[str, list[str]]:
    """Route name (namespace:name, or the full route when unnamed) -> its URL parameters; the admin is left
    out here and covered from its registry."""
    found: dict[str, list[str]] = {}

    def walk(patterns, prefix: str, namespace: str) -> None:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                if pattern.namespace == "admin":
                    continue
                inner = ":".join(part for part in (namespace, pattern.namespace) if part)
                walk(pattern.url_patterns, prefix + str(pattern.pattern), inner)
            elif isinstance(pattern, URLPattern):
                route = prefix + str(pattern.pattern)
                name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name or route
                found[name] = list(pattern.pattern.regex.groupindex)

    walk(get_resolver().url_patterns, "", "")
    return found


def admin_pages() -> dict[str, type | None]:
    """admin:index and every registered model's changelist, add and change page -> the model."""
    pages: dict[str, type | None] = {"admin:index": None}
    for model in admin.site._registry:
        prefix = f"admin:{model._meta.app_label}_{model._meta.model_name}"
        pages.update({f"{prefix}_changelist": model, f"{prefix}_add": model, f"{prefix}_change": model})
    return pages


def socket_routes() -> list[str]:
    from config.routing import websocket_urlpatterns

    return [str(pattern.pattern) for pattern in websocket_urlpatterns]


def _table_problems(existing, table: dict, kind: str) -> list[str]:
    missing = [f"{kind} {name!r} has no entry in the permission matrix: {FIX_HINT}"
               for name in existing if name not in table]
    stale = [f"the permission matrix has an entry for {kind} {name!r}, which no longer exists: remove it"
             for name in table if name not in existing]
    return missing + stale


def test_every_route_has_a_row_and_every_row_a_route():
    routes = http_routes()
    assert _table_problems(routes, {**PAGES, **API}, "route") == []
    assert not set(PAGES) & set(API), "a route is either a page or a /v1 route"
    assert set(API_WRITES) <= set(API), "a /v1 write row belongs to a /v1 route"
    assert set(PAGE_WRITES) <= set(PAGES), "a page write row belongs to a page"


def test_every_admin_page_has_a_row_and_every_row_a_page():
    assert _table_problems(admin_pages(), ADMIN, "admin page") == []


def test_every_socket_route_has_a_row_and_every_row_a_route():
    assert _table_problems(socket_routes(), SOCKETS, "socket route") == []


def test_the_completeness_check_names_a_route_missing_from_the_table():
    problems = _table_problems({"store:new_thing": [], "healthz": []}, {"healthz": PAGES["healthz"],
                                                                        "store:gone": PAGES["healthz"]}, "route")
    assert problems == [f"route 'store:new_thing' has no entry in the permission matrix: {FIX_HINT}",
                        "the permission matrix has an entry for route 'store:gone', which no longer exists: "
                        "remove it"]


# --- the world, once per module ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def world(django_db_setup, django_db_blocker):
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            yield build_world()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture(autouse=True)
def scripted_inference(monkeypatch):
    """The serving engine is this matrix's boundary: calls that pass the permission checks get a scripted
    answer instead of waiting for an inference worker (the engine has its own tests)."""

    async def classify(request):
        scores = {"negative": 0.05, "neutral": 0.05, "positive": 0.9}
        return {"results": [{"label": "positive", "score": 0.9, "scores": scores, "tokens": 3}
                            for _ in request.texts], "prompt_tokens": 3 * len(request.texts)}

    async def embed(request):
        vectors = array.array("f", [0.5, 0.5] * len(request.texts)).tobytes()
        return {"dim": 2, "vectors": vectors, "prompt_tokens": len(request.texts)}

    async def stream_generation(request):
        yield StreamEvent("text", "Hello.")
        yield StreamEvent("done", info={"text": "Hello.", "finish_reason": "stop", "prompt_tokens": 5,
                                        "completion_tokens": 2})

    async def retrieve(knowledge_base_id, lookup, k=8, index_key=""):
        from knowledge.client import Retrieved

        return Retrieved([])

    monkeypatch.setattr("store.api.views.classify", classify)
    monkeypatch.setattr("store.deployment_views.classify", classify)
    monkeypatch.setattr("store.api.views.embed", embed)
    monkeypatch.setattr("knowledge.replies.stream_generation", stream_generation)
    monkeypatch.setattr("market.tryit.stream_generation", stream_generation)
    monkeypatch.setattr("knowledge.client.retrieve", retrieve)
    monkeypatch.setattr("store.merging.send_task", lambda *args, **kwargs: None)  # merging loads the model


# --- filling a route with the owner's objects ---------------------------------------------------------


def url_kwargs(name: str, params: list[str], w: World) -> dict:
    deployment = {"store:model_detail": None, "store:playground_sentiment": w.sentiment}.get(name, w.bot)
    slug = (w.knowledge_base.slug if name.startswith("knowledge:") and "deployment" not in name
            and "playground" not in name else "smollm2-135m-instruct" if deployment is None else deployment.slug)
    values = {
        "public_id": w.job.public_id if "job" in name else w.dataset.public_id, "kb_id": w.knowledge_base.pk,
        "slug": slug, "short_id": w.tuned.short_id, "key": w.widget.public_key, "widget_id": w.widget.pk,
        "key_id": w.api_key.pk, "membership_id": w.dave_membership.pk, "invitation_id": w.invitation.pk,
        "token": w.invitation.token, "visitor_id": w.visitor.pk, "conversation_id": w.conversation.pk,
        "action": "note", "source_id": w.source.pk, "number": 1, "model_id": w.bot.slug,
        "file_id": w.dataset.openai_id, "job_id": w.job.openai_id, "upstream_id": w.upstream.pk,
    }
    if name.startswith("market:"):
        values["slug"] = w.listing.slug
    if name == "finetune:dataset_from_example":
        values["key"] = "support-sentiment"
    return {param: values[param] for param in params}


def _faq_file() -> SimpleUploadedFile:
    return SimpleUploadedFile("faq.md", FAQ.replace("30 days", "60 days").encode(), content_type="text/markdown")


# Form (or JSON, as ("json", body)) bodies for the POSTs: valid requests, so only permissions decide.
BODIES = {
    "accounts:switch_organization": lambda w: {"organization": w.organization.pk},
    "accounts:change_role": lambda w: {"role": "admin"},
    "finetune:dataset_token_stats": lambda w: {"base": "all-minilm-l6-v2"},
    "finetune:dataset_resplit": lambda w: {"train_percent": 80, "validation_percent": 10, "test_percent": 10,
                                           "seed": 7},
    "knowledge:upload": lambda w: {"file": _faq_file(), "title": "", "url": ""},
    "knowledge:paste": lambda w: {"title": "Hours", "text": "We open at nine every weekday.", "url": ""},
    "knowledge:ask": lambda w: {"question": "What is your return policy?", "deployment": ""},
    "knowledge:check_questions": lambda w: {"questions": "What is your return policy?\nDo you ship to Canada?"},
    "knowledge:switch_model": lambda w: {"embedding_model": "all-minilm-l6-v2"},
    "knowledge:source_upload": lambda w: {"file": _faq_file()},
    "knowledge:playground_chat": lambda w: ("json", {"messages": [{"role": "user", "content": "Hi"}]}),
    "chat:widget_session": lambda w: ("json", {}),
    "chat:conversation_action": lambda w: {"text": "Checking the order now."},
    "store:tuned_publish": lambda w: {"published": "1"},
    "store:deployment_rollback": lambda w: {"revision": 1},
    "store:deployment_status": lambda w: {"status": "paused"},
    "store:playground_sentiment": lambda w: ("json", {"text": "Great boots"}),
    "market:try_it": lambda w: {"message": "Do you ship to Canada?"},
    "market:add_version": lambda w: {"tuned_model": w.spare_version.short_id, "changelog": "Sandals too."},
    "market:set_published": lambda w: {"published": "0"},
    "market:hide": lambda w: {"hidden": "1", "reason": "spam"},
    "market:review": lambda w: {"rating": 3, "text": "Fine"},
    "market:deploy": lambda w: {"slug": "boots-helper-two"},
    "market:upgrade": lambda w: {"version": 1},
    "upstreams:replace_key": lambda w: {"api_key": "sk-spy-replacement"},
    "v1:embeddings": lambda w: ("json", {"model": w.embedder.slug, "input": "boots"}),
    "v1:sentiment": lambda w: ("json", {"model": w.sentiment.slug, "input": "Great boots"}),
    "v1:chat_completions": lambda w: ("json", {"model": w.bot.slug,
                                               "messages": [{"role": "user", "content": "Hi"}]}),
}
WRITE_BODIES = {
    "accounts:members": lambda w: {"email": "fred@example.com", "role": "agent"},
    "chat:canned": lambda w: {"title": "Hours", "text": "We open at nine."},
    "chat:widget": lambda w: {"regenerate_secret": "1"},
    "store:api_keys": lambda w: {"name": "Spy", "deployments": [w.bot.pk], "requests_per_minute": 60,
                                 "tokens_per_minute": 1000},
    "knowledge:deployment_knowledge": lambda w: {"knowledge_base": w.knowledge_base.pk, "policy": "quote",
                                                 "threshold": 0.6, "when_unsure": "handoff"},
    "knowledge:source_detail": lambda w: {"text": FAQ.replace("30 days", "45 days")},
    "market:publish": lambda w: {"tuned_model": w.tuned.short_id, "title": "Second Helper", "summary": "More",
                                 "license": "mit", "changelog": "First."},
    "market:manage": lambda w: {"title": "Shoe Helper", "summary": "Now with sandals", "license": "mit"},
    "upstreams:list": lambda w: {"name": "Spy upstream", "base_url": "https://spy.example/v1", "model_name": "m",
                                 "api_key": "sk-spy"},
    "v1:files": lambda w: {"purpose": "fine-tune", "file": SimpleUploadedFile("more.csv", sentiment_csv_bytes())},
    "v1:fine_tuning_jobs": lambda w: ("json", {"model": "all-minilm-l6-v2", "training_file": w.dataset.openai_id,
                                               "suffix": "more"}),
}
HEADERS = {"chat:widget_config": {"HTTP_ORIGIN": ALICE_ORIGIN}}


def database_state() -> dict:
    """Every row of the project's own tables (and users and groups): what a refused request must not change.
    An API key's last-used time is bookkeeping of authentication itself, not a change it was refused."""
    state = {}
    for model in apps.get_models():
        if model._meta.app_label in {"accounts", "store", "finetune", "knowledge", "chat", "market", "auth",
                                       "upstreams"}:
            rows = list(model._default_manager.order_by("pk").values())
            for row in rows:
                row.pop("last_used_at", None)
            state[model._meta.label] = rows
    return state


def _body(response) -> bytes:
    if not response.streaming:
        return response.content
    if response.is_async:  # an async view's stream (SSE): read it as Daphne would
        async def read() -> bytes:
            return b"".join([chunk async for chunk in response.streaming_content])

        return async_to_sync(read)()
    return b"".join(response.streaming_content)


def send(client, expect: Expect, url: str, name: str, w: World, bodies: dict, **headers):
    headers = {**HEADERS.get(name, {}), **headers}
    if expect.method == "GET":
        return client.get(url, **headers)
    body = bodies.get(name, lambda w: {})(w)
    if expect.method == "DELETE":
        return client.delete(url, **headers)
    if isinstance(body, tuple):
        return client.generic(expect.method, url, json.dumps(body[1]),
                              content_type="application/json", **headers)
    return client.post(url, body, **headers)


def check(name: str, expect: Expect, url: str, w: World, actors: dict, bodies: dict = BODIES) -> None:
    actual, problems = {}, []
    private = not expect.allowed & {"anonymous", "no_key"}  # what anyone may read is public by design
    for role, (client, headers) in actors.items():
        refused = role not in expect.allowed
        before = database_state() if refused and expect.method != "GET" else None
        with transaction.atomic():  # a refused role sees exactly what the next role sees
            response = send(client, expect, url, name, w, bodies, **headers)
            body = _body(response)
            actual[role] = response.status_code
            if before is not None and database_state() != before:
                problems.append(f"{role}: refused ({response.status_code}) but the database changed")
            transaction.set_rollback(True)
        location = response.get("Location", "")
        if refused and response.status_code == 302 and role in ("anonymous", "no_org"):
            wanted = ("/accounts/login/", "/admin/login/") if role == "anonymous" else ("/accounts/organizations/new/",)
            if not location.startswith(wanted):
                problems.append(f"{role}: redirected to {location!r}, not to {wanted[0]}")
        if private and role in ("outsider", "other_org_key") and response.status_code == 200 \
                and MARKER.encode() in body.lower():
            problems.append(f"{role}: the answer carries the owner's data ({MARKER!r})")
    assert (actual, problems) == (expect.statuses, []), f"{expect.method} {url}"


# --- the pages, the /v1 API and the admin ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PAGES))
def test_page(name, world):
    url = reverse(name, kwargs=url_kwargs(name, http_routes()[name], world))
    check(name, PAGES[name], url, world, {role: (world.client(role), {}) for role in PAGE_ROLES})


@pytest.mark.parametrize("name", sorted(PAGE_WRITES))
def test_page_write(name, world):
    url = reverse(name, kwargs=url_kwargs(name, http_routes()[name], world))
    check(name, PAGE_WRITES[name], url, world, {role: (world.client(role), {}) for role in PAGE_ROLES}, WRITE_BODIES)


def _api_url(name: str, w: World, write: bool = False) -> str:
    if not name.startswith("v1:"):
        return "/v1/no/such/route"
    kwargs = url_kwargs(name, http_routes()[name], w)
    if write and "file_id" in kwargs:
        kwargs["file_id"] = w.spare_dataset.openai_id  # the file in use by a job cannot be deleted by anyone
    return reverse(name, kwargs=kwargs)


def _key_actors(w: World) -> dict:
    return {role: (Client(), {"HTTP_AUTHORIZATION": w.keys[role]} if role in w.keys else {}) for role in KEY_ROLES}


@pytest.mark.parametrize("name", sorted(API))
def test_api(name, world):
    check(name, API[name], _api_url(name, world), world, _key_actors(world))


@pytest.mark.parametrize("name", sorted(API_WRITES))
def test_api_write(name, world):
    check(name, API_WRITES[name], _api_url(name, world, write=True), world, _key_actors(world), WRITE_BODIES)


def _admin_url(name: str, model, w: World) -> str:
    if not name.endswith("_change"):
        return reverse(name)
    from django.contrib.auth import get_user_model

    if model is get_user_model():
        obj = w.users["admin"]
    elif is_organization_owned(model):
        obj = scope_to(model._default_manager.all(), w.organization).first()
    else:
        obj = model._default_manager.filter(name__contains=MARKER).first() if model.__name__ == "Group" \
            else model._default_manager.first()
    assert obj is not None, f"the world has no {model.__name__} to open"
    return reverse(name, args=[obj.pk])


@pytest.mark.parametrize("name", sorted(ADMIN))
def test_admin(name, world):
    url = _admin_url(name, admin_pages()[name], world)
    check(name, ADMIN[name], url, world, {role: (world.client(role), {}) for role in PAGE_ROLES})
