"""No page uses an element id twice: a label's `for`, an aria reference or a script would find the other
element (the knowledge page's upload and paste forms both had id_title and id_url)."""

import re
from collections import Counter

import pytest
from django.urls import reverse

from chat.widgets import create_widget
from knowledge import deployments, sources
from knowledge.models import AnswerPolicy
from store import deploy
from tests.knowledge.conftest import SMALL_FAQ

ID = re.compile(r'<[a-zA-Z][^>]*?\sid="([^"]+)"')


@pytest.fixture
def shop(alice, catalog):
    knowledge_base = sources.create_knowledge_base(alice.organization, "Help centre")
    source = sources.add_text(knowledge_base, "FAQ", SMALL_FAQ)
    bot = deploy.create_or_update(alice.organization, "bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    deployments.configure(bot, knowledge_base=knowledge_base, policy=AnswerPolicy.QUOTE, threshold=0.6)
    widget = create_widget(alice.organization, bot, None, ["https://alice-shoes.example"])
    return {"knowledge_base": knowledge_base, "source": source, "bot": bot, "widget": widget}


def test_every_page_an_admin_opens_has_unique_ids(alice, shop):
    kb, bot = shop["knowledge_base"].slug, shop["bot"].slug
    urls = [reverse("store:home"), reverse("market:storefront"), reverse("finetune:index"),
            reverse("finetune:job_new"), reverse("finetune:dataset_upload"), reverse("knowledge:index"),
            reverse("knowledge:detail", args=[kb]), reverse("knowledge:source_detail", args=[kb, shop["source"].pk]),
            reverse("store:deployment_list"), reverse("store:deployment_new"),
            reverse("store:deployment_detail", args=[bot]), reverse("store:deployment_edit", args=[bot]),
            reverse("store:api_keys"), reverse("store:usage"), reverse("accounts:members"),
            reverse("chat:console"), reverse("chat:widgets"), reverse("chat:widget", args=[shop["widget"].pk]),
            reverse("upstreams:list")]
    for url in urls:
        response = alice.client.get(url)
        assert response.status_code == 200, url
        repeated = [name for name, count in Counter(ID.findall(response.content.decode())).items() if count > 1]
        assert repeated == [], f"{url} repeats the ids {repeated}"
