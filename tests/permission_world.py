"""The world the permission matrix runs in: one of every object, owned by Alice Shoes, and one actor per role.

Every object a URL can name exists here (through the apps' own actions), so each route resolves to a real
object of the owner's organization; the outsider (Charlie Boots) has objects of his own, so a refusal is
never just "you have nothing". Alice's names carry MARKER: no page or API answer another role may read
should ever contain it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import Group
from django.test import Client

MARKER = "alicesecret"
PASSWORD = "correct horse battery staple"
ALICE_ORIGIN = "https://shop.alice.example"
FAQ = f"""# {MARKER} help

## Returns

### What is your return policy?
You can return unworn shoes within 30 days of delivery. Returns are free.
"""

# Page roles, least to most privileged; the owner's admin acts last, so what it changes is seen by nobody.
PAGE_ROLES = ("anonymous", "no_org", "outsider", "agent", "admin")
KEY_ROLES = ("no_key", "bad_key", "other_org_key", "restricted_key", "full_key")


@dataclass
class World:
    users: dict = field(default_factory=dict)  # role -> User (anonymous absent)
    sessions: dict = field(default_factory=dict)  # role -> session key
    keys: dict = field(default_factory=dict)  # key role -> Authorization header value
    objects: dict = field(default_factory=dict)

    def __getattr__(self, name: str):
        try:
            return self.__dict__["objects"][name]
        except KeyError:
            raise AttributeError(name) from None

    def client(self, role: str) -> Client:
        """A fresh client signed in as `role` (its session was made once; a logout in one test cannot leak)."""
        client = Client()
        if role in self.sessions:
            client.cookies[settings.SESSION_COOKIE_NAME] = self.sessions[role]
        return client


def _session_for(user) -> str:
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store["_auth_user_backend"] = "django.contrib.auth.backends.ModelBackend"
    store["_auth_user_hash"] = user.get_session_auth_hash()
    store.create()
    return store.session_key


def build_world(with_knowledge_source: bool = True) -> World:
    """Alice (admin) and Bob (agent) of Alice Shoes, Charlie (admin of Charlie Boots), Nora (no organization).

    `with_knowledge_source=False` skips adding a source: in a transactional test its embedding task would be
    sent on commit.
    """
    from accounts import people
    from accounts.models import Membership, Role
    from chat.conversations import append_message, current_conversation
    from chat.identity import open_visitor
    from chat.models import Author, CannedReply
    from chat.widgets import create_widget
    from finetune import jobs
    from finetune.datasets import create_dataset
    from finetune.models import JobCheckpoint
    from knowledge import deployments as knowledge_settings
    from knowledge import sources
    from knowledge.models import WrongAnswer
    from store import deploy
    from store.api_keys import create_api_key
    from store.catalog import sync_catalog
    from store.models import FoundationModel
    from store.tuned import artifact_folder
    from store.usage import record_usage
    from tests.factories import make_tuned, sentiment_csv_bytes
    from upstreams import registry as upstream_registry

    sync_catalog()
    catalog = {model.slug: model for model in FoundationModel.objects.all()}
    world = World()
    alice = people.create_user("alice@alice-shoes.example", PASSWORD, "Alice")
    organization = people.create_organization("Alice Shoes", alice)
    bob = people.create_user("bob@alice-shoes.example", PASSWORD, "Bob")
    Membership.objects.create(user=bob, organization=organization, role=Role.AGENT)
    dave = people.create_user("dave@alice-shoes.example", PASSWORD, "Dave")
    dave_membership = Membership.objects.create(user=dave, organization=organization, role=Role.AGENT)
    charlie = people.create_user("charlie@charlie-boots.example", PASSWORD, "Charlie")
    charlie_org = people.create_organization("Charlie Boots", charlie)
    nora = people.create_user("nora@nowhere.example", PASSWORD, "Nora")
    world.users = {"no_org": nora, "outsider": charlie, "agent": bob, "admin": alice}
    world.sessions = {role: _session_for(user) for role, user in world.users.items()}

    dataset = create_dataset(organization, sentiment_csv_bytes(), f"{MARKER}.csv", name=f"{MARKER} moods").dataset
    spare_dataset = create_dataset(organization, sentiment_csv_bytes(), f"{MARKER}-spare.csv").dataset
    assert dataset is not None and spare_dataset is not None
    job = jobs.create_job(organization, catalog["all-minilm-l6-v2"], dataset, suffix=MARKER, enqueue=False)
    JobCheckpoint.objects.create(job=job, step=1, path="checkpoint-1")
    tuned = make_tuned(organization, catalog["smollm2-135m-instruct"], MARKER)
    tuned.artifact_path = f"tuned/{organization.pk}/{tuned.short_id}"  # weights in the artifact storage
    folder = artifact_folder(tuned)
    (folder / "merged").mkdir(parents=True, exist_ok=True)
    (folder / "adapter_config.json").write_text("{}")
    (folder / "merged" / "config.json").write_text("{}")
    tuned.merged_status = "ready"
    tuned.save(update_fields=["merged_status", "artifact_path"])
    moods = make_tuned(organization, catalog["all-minilm-l6-v2"], f"{MARKER}-moods", task="sentiment", method="full",
                       labels=["negative", "neutral", "positive"])
    vectors = make_tuned(organization, catalog["all-minilm-l6-v2"], f"{MARKER}-vectors", task="embedding",
                         method="full")
    bot = deploy.create_or_update(organization, "acme-support", deploy.ModelChoice(tuned=tuned), alice,
                                  name=f"{MARKER} support")
    deploy.create_or_update(organization, "acme-support", deploy.ModelChoice(tuned=tuned), alice,
                            name=f"{MARKER} support", temperature=0.3)  # revision 2, so a rollback has a target
    sentiment = deploy.create_or_update(organization, "acme-moods", deploy.ModelChoice(tuned=moods), alice)
    embedder = deploy.create_or_update(organization, "acme-vectors", deploy.ModelChoice(tuned=vectors), alice)
    helper = deploy.create_or_update(organization, "acme-helper", deploy.ModelChoice(tuned=tuned), alice)
    knowledge_base = sources.create_knowledge_base(organization, f"{MARKER} help centre")
    source = sources.add_text(knowledge_base, "FAQ", FAQ, user=alice) if with_knowledge_source else None
    knowledge_settings.configure(helper, knowledge_base=knowledge_base, policy="grounded", threshold=0.5, user=alice)
    WrongAnswer.objects.create(knowledge_base=knowledge_base, question=f"{MARKER}: do you resole boots?",
                               entries=[[0, "FAQ"]], marked_by=alice)
    widget = create_widget(organization, bot, sentiment, [ALICE_ORIGIN], title=f"{MARKER} help")
    visitor = open_visitor(widget)
    conversation = current_conversation(visitor, create=True)
    assert conversation is not None
    append_message(conversation, Author.CUSTOMER, f"{MARKER}: where are my boots?")
    canned = CannedReply.objects.create(organization=organization, title=MARKER, text="Thanks for waiting.")
    invitation = people.invite(organization, "erin@alice-shoes.example", Role.AGENT, alice, "http://testserver/")
    full_key, full = create_api_key(organization, f"{MARKER} key")
    _, restricted = create_api_key(organization, f"{MARKER} bot key", [bot])
    record_usage(organization.pk, "acme-support", 10, 5, api_key=full_key)
    group = Group.objects.create(name=f"{MARKER} group")

    # Charlie's own things, so his lists are not empty and a refusal is not "you have nothing".
    create_dataset(charlie_org, sentiment_csv_bytes(), "boots.csv", name="Charlie moods")
    charlie_bot = deploy.create_or_update(charlie_org, "charlie-bot", deploy.ModelChoice(
        tuned=make_tuned(charlie_org, catalog["smollm2-135m-instruct"], "boots")))
    _, outsider = create_api_key(charlie_org, "charlie key")
    upstream = upstream_registry.register(organization, f"{MARKER} upstream", "https://llm.alice.example/v1",
                                          "gpt-big", f"sk-{MARKER}-key", alice)
    upstream_registry.register(charlie_org, "Charlie upstream", "https://llm.charlie.example/v1", "gpt-big",
                               "sk-charlie-key", charlie)
    marketplace = _marketplace(organization, alice, charlie_org, charlie, catalog["smollm2-135m-instruct"])
    world.keys = {"bad_key": "Bearer gpts_00000000_not-a-real-key-at-all", "other_org_key": f"Bearer {outsider}",
                  "restricted_key": f"Bearer {restricted}", "full_key": f"Bearer {full}"}
    world.objects = {
        "organization": organization, "catalog": catalog, "dataset": dataset, "spare_dataset": spare_dataset,
        "job": job, "tuned": tuned, "bot": bot, "sentiment": sentiment, "embedder": embedder, "helper": helper,
        "knowledge_base": knowledge_base, "source": source, "widget": widget, "visitor": visitor,
        "conversation": conversation, "canned": canned, "invitation": invitation, "api_key": full_key,
        "dave_membership": dave_membership, "group": group, "charlie_org": charlie_org, "charlie_bot": charlie_bot,
        "upstream": upstream,
        **marketplace,
    }
    return world


def _marketplace(organization, alice, charlie_org, charlie, chat_base) -> dict:
    """Alice publishes a listing that Charlie installed, deployed, used and reviewed; and the other way round
    (so the admin has an installation and a review of Alice's to open). What a listing shows is public by
    design, so its names carry no MARKER; what stays private does."""
    import tempfile
    from pathlib import Path

    from market import installs, listings, reviews
    from store import artifacts
    from store.usage import record_usage
    from tests.factories import make_tuned

    def publishable(org, suffix):
        tuned = make_tuned(org, chat_base, suffix)
        tuned.artifact_path = artifacts.new_tuned_name(org.pk, tuned.short_id)
        tuned.save(update_fields=["artifact_path"])
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "adapter_config.json").write_text('{"peft_type": "LORA"}')
            artifacts.publish_folder(Path(folder), tuned.artifact_path)
        return tuned

    listing = listings.publish(organization, publishable(organization, "shoehelp"), alice, title="Shoe Helper",
                               summary="Answers shoe shoppers", license="apache-2.0", languages="en",
                               allow_weights_download=True)
    spare_version = publishable(organization, "shoehelp")  # for "add a version"
    installed = installs.install(charlie_org, listing, charlie)
    boots_helper = installs.deploy_installed(installed, "boots-helper", charlie)
    record_usage(charlie_org.pk, boots_helper.slug, 10, 5)
    reviews.save_review(charlie_org, listing, 4, "Helps our boot shoppers", charlie)
    charlies_listing = listings.publish(charlie_org, publishable(charlie_org, "bootshelp"), charlie,
                                        title="Boots Helper", summary="Answers boot shoppers", license="mit")
    alice_install = installs.install(organization, charlies_listing, alice)
    alice_boots = installs.deploy_installed(alice_install, f"{MARKER}-boots", alice)
    record_usage(organization.pk, alice_boots.slug, 3, 1)
    reviews.save_review(organization, charlies_listing, 5, f"{MARKER} review", alice)
    return {"listing": listing, "spare_version": spare_version, "charlies_listing": charlies_listing}
