"""The expected answer of every route to every role: the one table tests/test_permission_matrix.py and
tests/test_socket_permissions.py check against the URLconf, the admin registry and the WebSocket routing.

A new route fails the suite until it has a row here. Pages: anonymous, signed in with no organization
(no_org), admin of another organization (outsider), the owner's agent, the owner's admin. /v1: no key,
a bad key, another organization's key, a key restricted to one deployment, a full key. `allowed` are the
roles the route serves; a refused POST must change nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.permission_world import KEY_ROLES, PAGE_ROLES


@dataclass(frozen=True)
class Expect:
    method: str
    statuses: dict[str, int]
    allowed: frozenset[str]


def get(anonymous: int, no_org: int, outsider: int, agent: int, admin: int,
        allowed: tuple[str, ...] | None = None) -> Expect:
    statuses = dict(zip(PAGE_ROLES, (anonymous, no_org, outsider, agent, admin), strict=True))
    served = (role for role, status in statuses.items() if status == 200) if allowed is None else allowed
    return Expect("GET", statuses, frozenset(served))


def post(anonymous: int, no_org: int, outsider: int, agent: int, admin: int,
         allowed: tuple[str, ...] = ("admin",)) -> Expect:
    return Expect("POST", dict(zip(PAGE_ROLES, (anonymous, no_org, outsider, agent, admin), strict=True)),
                  frozenset(allowed))


def api(no_key: int, bad_key: int, other_org_key: int, restricted_key: int, full_key: int,
        method: str = "GET") -> Expect:
    statuses = dict(zip(KEY_ROLES, (no_key, bad_key, other_org_key, restricted_key, full_key), strict=True))
    return Expect(method, statuses, frozenset(role for role, status in statuses.items() if status == 200))


PUBLIC = get(200, 200, 200, 200, 200)
# organization_admin_required: login, then "create an organization", then 403 for agents; an outsider
# gets 404 for the owner's objects (foreign looks missing) and his own organization's list pages.
ADMIN_LIST = get(302, 302, 200, 403, 200)
ADMIN_OBJECT = get(302, 302, 404, 403, 200)
ADMIN_ACTION = post(302, 302, 404, 403, 302)
MEMBER_LIST = get(302, 302, 200, 200, 200)
MEMBER_OBJECT = get(302, 302, 404, 200, 200)

PAGES: dict[str, Expect] = {
    "healthz": PUBLIC,
    "favicon": get(301, 301, 301, 301, 301, allowed=PAGE_ROLES),  # to the static icon, for everyone
    "accounts:login": get(200, 302, 302, 302, 302, allowed=PAGE_ROLES),  # signed in: on to the home page
    "accounts:logout": post(302, 302, 302, 302, 302, allowed=PAGE_ROLES),
    "accounts:signup": PUBLIC,
    "accounts:signup_invited": PUBLIC,
    "accounts:new_organization": get(302, 200, 200, 200, 200),
    "accounts:switch_organization": post(302, 302, 404, 302, 302, allowed=("agent", "admin")),
    "accounts:members": MEMBER_LIST,
    "accounts:change_role": ADMIN_ACTION,
    "accounts:remove_member": ADMIN_ACTION,
    "accounts:revoke_invitation": ADMIN_ACTION,
    "accounts:accept_invitation": PUBLIC,
    "finetune:index": ADMIN_LIST,
    "finetune:job_list_partial": ADMIN_LIST,
    "finetune:job_new": ADMIN_LIST,
    "finetune:job_defaults": ADMIN_LIST,
    "finetune:job_detail": ADMIN_OBJECT,
    "finetune:job_live": ADMIN_OBJECT,
    "finetune:job_cancel": ADMIN_ACTION,
    "finetune:job_delete": ADMIN_ACTION,
    "finetune:dataset_upload": ADMIN_LIST,
    "finetune:dataset_from_knowledge": ADMIN_ACTION,
    # Every organization's admin may copy a bundled example into their own organization.
    "finetune:dataset_from_example": post(302, 302, 302, 403, 302, allowed=("outsider", "admin")),
    "finetune:answer_recipe_from_knowledge": ADMIN_ACTION,
    "finetune:dataset_detail": ADMIN_OBJECT,
    "finetune:dataset_stats": ADMIN_OBJECT,
    "finetune:dataset_download": ADMIN_OBJECT,
    "finetune:dataset_token_stats": ADMIN_ACTION,
    "finetune:dataset_resplit": ADMIN_ACTION,
    "finetune:dataset_delete": ADMIN_ACTION,
    "knowledge:index": ADMIN_LIST,
    "knowledge:detail": ADMIN_OBJECT,
    "knowledge:sources_partial": ADMIN_OBJECT,
    "knowledge:upload": ADMIN_ACTION,
    "knowledge:paste": ADMIN_ACTION,
    "knowledge:ask": post(302, 302, 404, 403, 200),
    "knowledge:check_questions": post(302, 302, 404, 403, 200),
    "knowledge:switch_model": ADMIN_ACTION,
    "knowledge:delete": ADMIN_ACTION,
    "knowledge:source_detail": ADMIN_OBJECT,
    "knowledge:source_upload": ADMIN_ACTION,
    "knowledge:source_delete": ADMIN_ACTION,
    "knowledge:version_retry": ADMIN_ACTION,
    "knowledge:deployment_knowledge": ADMIN_OBJECT,
    "knowledge:playground_chat": post(302, 302, 404, 403, 200),
    "chat:widget_frame": PUBLIC,
    "chat:widget_config": PUBLIC,  # asked with an allowed Origin (the socket table checks the Origin rule)
    "chat:widget_session": post(200, 200, 200, 200, 200, allowed=PAGE_ROLES),
    "chat:widgets": ADMIN_LIST,
    "chat:widget": ADMIN_OBJECT,
    "chat:console": MEMBER_LIST,
    "chat:canned": MEMBER_LIST,
    "chat:insights": ADMIN_LIST,
    "chat:export": ADMIN_LIST,
    "chat:erase_visitor": ADMIN_ACTION,
    "chat:conversation": MEMBER_OBJECT,
    "chat:conversation_live": MEMBER_OBJECT,
    "chat:conversation_action": post(302, 302, 404, 302, 302, allowed=("agent", "admin")),
    "store:home": PUBLIC,
    "store:model_detail": PUBLIC,
    # Unpublished: members see the card (only admins manage it); everyone else gets the same 404 as missing.
    "store:tuned_detail": get(404, 404, 404, 200, 200),
    "store:tuned_download": ADMIN_OBJECT,
    "store:tuned_merge": ADMIN_ACTION,
    "store:tuned_merged_download": ADMIN_OBJECT,
    "store:tuned_publish": ADMIN_ACTION,
    "store:tuned_delete": ADMIN_ACTION,
    "store:deployment_list": ADMIN_LIST,
    "store:deployment_new": ADMIN_LIST,
    "store:deployment_detail": ADMIN_OBJECT,
    "store:deployment_edit": ADMIN_OBJECT,
    "store:deployment_rollback": ADMIN_ACTION,
    "store:deployment_status": ADMIN_ACTION,
    "store:deployment_delete": ADMIN_ACTION,
    "store:playground_sentiment": post(302, 302, 404, 403, 200),
    "store:api_keys": ADMIN_LIST,
    "store:api_key_revoke": ADMIN_ACTION,
    "store:usage": ADMIN_LIST,
    # The marketplace: Alice publishes "Shoe Helper"; Charlie (the outsider) installed, deployed, used and
    # reviewed it. Installer pages are the installer's: the publisher has no install of her own listing (404).
    "market:storefront": PUBLIC,
    "market:listing": PUBLIC,
    "market:try_it": post(302, 200, 200, 200, 200, allowed=("no_org", "outsider", "agent", "admin")),
    "market:publish": ADMIN_LIST,
    "market:manage": ADMIN_OBJECT,
    "market:add_version": ADMIN_ACTION,
    "market:set_published": ADMIN_ACTION,
    "market:hide": post(302, 403, 403, 403, 403, allowed=()),  # operators (superusers) only
    "market:install": post(302, 302, 302, 403, 302, allowed=("outsider",)),  # not your own listing
    "market:review": post(302, 302, 302, 403, 302, allowed=("outsider",)),  # not your own listing
    "market:installed": ADMIN_LIST,
    "market:installation": get(302, 302, 200, 403, 404),
    "market:download": get(302, 302, 200, 403, 404),
    "market:deploy": post(302, 302, 302, 403, 404, allowed=("outsider",)),
    "market:upgrade": post(302, 302, 302, 403, 404, allowed=("outsider",)),
    "market:uninstall": post(302, 302, 302, 403, 404, allowed=("outsider",)),
    # Hosted models: Alice's upstream (its key) is hers alone; Charlie has one of his own.
    "upstreams:list": ADMIN_LIST,
    "upstreams:replace_key": ADMIN_ACTION,
    "upstreams:delete": ADMIN_ACTION,
}

# The writes of pages whose row above is their GET: the form's POST. An outsider who names the owner's
# objects in a form of his own organization gets the form back with an error (200) and changes nothing.
PAGE_WRITES: dict[str, Expect] = {
    "accounts:members": post(302, 302, 200, 403, 200, allowed=("outsider", "admin")),  # invites to his own org
    "chat:canned": post(302, 302, 302, 403, 302, allowed=("outsider", "admin")),
    "chat:widget": ADMIN_ACTION,  # a new identity secret
    "store:api_keys": post(302, 302, 200, 403, 200),  # outsider: the owner's deployment is not a choice
    "knowledge:deployment_knowledge": ADMIN_ACTION,
    "knowledge:source_detail": ADMIN_ACTION,  # a new version of the text
    "market:publish": post(302, 302, 200, 403, 302),  # outsider: the owner's tuned model is not a choice
    "market:manage": ADMIN_ACTION,
    "upstreams:list": post(302, 302, 302, 403, 302, allowed=("outsider", "admin")),  # registers in his own org
}

# /v1: the key is the credential; another organization's objects and models look missing (404); a key
# restricted to deployments reaches those deployments only: never files or fine-tuning (403).
API: dict[str, Expect] = {
    "v1:models": api(401, 401, 200, 200, 200),
    "v1:model": api(401, 401, 404, 200, 200),
    "v1:embeddings": api(401, 401, 404, 404, 200, "POST"),
    "v1:sentiment": api(401, 401, 404, 404, 200, "POST"),
    "v1:chat_completions": api(401, 401, 404, 200, 200, "POST"),
    "v1:openapi": api(200, 200, 200, 200, 200),
    "v1:docs": api(200, 200, 200, 200, 200),
    "v1:files": api(401, 401, 200, 403, 200),
    "v1:file": api(401, 401, 404, 403, 200),
    "v1:file_content": api(401, 401, 404, 403, 200),
    "v1:fine_tuning_jobs": api(401, 401, 200, 403, 200),
    "v1:fine_tuning_job": api(401, 401, 404, 403, 200),
    "v1:cancel_fine_tuning_job": api(401, 401, 404, 403, 200, "POST"),
    "v1:fine_tuning_job_events": api(401, 401, 404, 403, 200),
    "v1:fine_tuning_job_checkpoints": api(401, 401, 404, 403, 200),
    "v1/^.*$": api(404, 404, 404, 404, 404),  # the catch-all: an unknown route says so, key or not
}

# The writes of /v1 routes whose row above is a read: uploading a file, deleting one (a file no job uses),
# creating a fine-tuning job. Another organization's key may write to its own organization only: the
# owner's file is an invalid training file to it (400, as a missing one).
API_WRITES: dict[str, Expect] = {
    "v1:files": api(401, 401, 200, 403, 200, "POST"),
    "v1:file": api(401, 401, 404, 403, 200, "DELETE"),
    "v1:fine_tuning_jobs": api(401, 401, 400, 403, 200, "POST"),
}

# The admin, from its registry: every model's changelist, add and change page (the change page of an
# object of the owner's organization). Only admins of some organization get in; an outsider's admin is
# scoped to his own organizations, so the owner's object "does not exist" (the admin's 302 to its index).
ADMIN_OPEN = get(302, 403, 200, 403, 200)
ADMIN_CLOSED = get(302, 403, 403, 403, 403)
ADMIN_FOREIGN_OBJECT = get(302, 403, 302, 403, 200)
ADMIN_GLOBAL_OBJECT = get(302, 403, 200, 403, 200)


def _admin(model: str, add: bool = True, change: Expect = ADMIN_FOREIGN_OBJECT) -> dict[str, Expect]:
    return {f"admin:{model}_changelist": ADMIN_OPEN, f"admin:{model}_add": ADMIN_OPEN if add else ADMIN_CLOSED,
            f"admin:{model}_change": change}


ADMIN: dict[str, Expect] = {
    "admin:index": ADMIN_OPEN,
    # People and groups are shared between organizations: operators (superusers) only.
    "admin:auth_user_changelist": ADMIN_CLOSED, "admin:auth_user_add": ADMIN_CLOSED,
    "admin:auth_user_change": ADMIN_CLOSED,
    "admin:auth_group_changelist": ADMIN_CLOSED, "admin:auth_group_add": ADMIN_CLOSED,
    "admin:auth_group_change": ADMIN_CLOSED,
    **_admin("accounts_organization", add=False),  # organizations come from sign-up
    **_admin("accounts_membership"),
    **_admin("accounts_invitation"),
    **_admin("finetune_dataset"),
    **_admin("finetune_finetunejob"),
    **_admin("finetune_jobcheckpoint", add=False),
    **_admin("finetune_jobevent", add=False),
    **_admin("chat_widget"),
    **_admin("chat_conversation"),
    **_admin("chat_visitor"),
    **_admin("chat_cannedreply"),
    **_admin("chat_message", add=False),
    **_admin("store_foundationmodel", add=False, change=ADMIN_GLOBAL_OBJECT),  # the catalog is global, read-only
    **_admin("store_tunedmodel", add=False),
    **_admin("store_deployment"),
    **_admin("store_apikey", add=False),
    **_admin("store_usagedaily", add=False),
    **_admin("store_deploymentrevision", add=False),
    **_admin("knowledge_knowledgebase"),
    **_admin("knowledge_knowledgesource", add=False),
    **_admin("knowledge_passage", add=False),
    **_admin("knowledge_deploymentknowledge"),
    **_admin("knowledge_wronganswer", add=False),  # made by "Mark wrong" in the console
    **_admin("market_listing", add=False),  # published from a tuned model's version (market:publish)
    **_admin("market_listingversion", add=False),
    **_admin("market_installation", add=False),
    **_admin("market_review", add=False),
    **_admin("upstreams_upstreammodel", add=False),  # registered on the page, where the key is typed once
}

# WebSockets, by route: whether each role's socket is accepted. The widget's socket has no signed-in
# roles: a visitor's signed token, from a page of this site, is the credential.
SOCKETS: dict[str, dict[str, bool]] = {
    "ws/finetune/jobs/": {"anonymous": False, "no_org": False, "outsider": True, "agent": False, "admin": True},
    "ws/finetune/jobs/<str:public_id>/": {"anonymous": False, "no_org": False, "outsider": False, "agent": False,
                                          "admin": True},
    "ws/finetune/datasets/<str:public_id>/": {"anonymous": False, "no_org": False, "outsider": False,
                                              "agent": False, "admin": True},
    "ws/knowledge/<int:knowledge_base_id>/": {"anonymous": False, "no_org": False, "outsider": False,
                                              "agent": False, "admin": True},
    "ws/chat/console/": {"anonymous": False, "no_org": False, "outsider": True, "agent": True, "admin": True},
    "ws/chat/console/<int:conversation_id>/": {"anonymous": False, "no_org": False, "outsider": False,
                                               "agent": True, "admin": True},
    "ws/chat/widget/": {"visitor": True, "foreign_origin": False, "same_host_other_port": False, "no_token": False,
                        "forged_token": False, "another_widgets_visitor": False},
}
