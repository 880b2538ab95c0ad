import json

from django.core.management import call_command

from chat.identity import identity_hash
from chat.models import Visitor, Widget


def test_the_frame_may_be_embedded_only_by_allowed_origins(client, widget):
    response = client.get(f"/chat/widget/{widget.public_key}/frame/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "frame-ancestors https://shop.alice.example;" in csp
    assert "X-Frame-Options" not in response
    assert "Alice help" in response.content.decode()


def test_a_widget_without_allowed_origins_cannot_be_embedded_anywhere(client, widget):
    Widget.objects.filter(pk=widget.pk).update(allowed_origins=[])
    csp = client.get(f"/chat/widget/{widget.public_key}/frame/")["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp


def test_the_config_answers_allowed_origins_with_cors(client, widget):
    response = client.get(f"/chat/widget/{widget.public_key}/config.json", HTTP_ORIGIN="https://shop.alice.example")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == "https://shop.alice.example"
    assert response.json()["frame"].endswith(f"/chat/widget/{widget.public_key}/frame/")


def test_the_config_refuses_other_origins(client, widget):
    response = client.get(f"/chat/widget/{widget.public_key}/config.json", HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403
    assert "may not be embedded on https://evil.example" in response.json()["error"]


def test_an_unknown_widget_is_404(client, db):
    assert client.get("/chat/widget/wk_nope/frame/").status_code == 404


def session(client, widget, **body):
    return client.post(f"/chat/widget/{widget.public_key}/session", data=json.dumps(body),
                       content_type="application/json")


def test_a_session_gives_a_visitor_token_that_resumes(client, widget):
    first = session(client, widget).json()
    again = session(client, widget, visitor_token=first["visitor_token"]).json()
    assert first["visitor_token"] == again["visitor_token"] and first["token"]
    assert Visitor.objects.count() == 1


def test_a_verified_identity_is_attached(client, widget):
    identity = {"id": "cust-42", "name": "Dana", "email": "dana@example.com",
                "hash": identity_hash(widget, "cust-42")}
    assert session(client, widget, identity=identity).status_code == 200
    visitor = Visitor.objects.get()
    assert (visitor.external_id, visitor.name, visitor.email) == ("cust-42", "Dana", "dana@example.com")
    # another device, same customer: the same visitor (and so the same conversation)
    other = session(client, widget, identity=identity).json()
    assert other["visitor_token"] == visitor.token


def test_a_wrong_identity_hash_is_refused_and_logged(client, widget, caplog):
    response = session(client, widget, identity={"id": "cust-42", "hash": "0" * 64})
    assert response.status_code == 403 and response.json()["code"] == "identity_refused"
    assert not Visitor.objects.exists()
    assert any("wrong hash" in record.getMessage() for record in caplog.records)


def test_a_widget_can_require_an_identity(client, widget):
    Widget.objects.filter(pk=widget.pk).update(require_identity=True)
    assert session(client, widget).status_code == 403


def test_create_widget_prints_the_snippet_and_the_key_last(alice, widget, capsys):
    call_command("create_widget", "--org", alice.organization.slug, "--deployment", "acme-support",
                 "--sentiment-deployment", "acme-sentiment", "--allowed-origin", "http://localhost:8001/shop")
    lines = capsys.readouterr().out.strip().splitlines()
    created = Widget.objects.get(public_key=lines[-1])
    assert created.allowed_origins == ["http://localhost:8001"]
    assert f'data-widget="{created.public_key}"' in lines[-2] and "/static/chat/widget.js" in lines[-2]


def test_the_widget_settings_page_edits_origins_and_rules(alice, widget):
    response = alice.client.post(f"/chat/widgets/{widget.pk}/", {
        "deployment": widget.deployment_id, "sentiment_deployment": widget.sentiment_deployment_id,
        "title": "Help", "greeting": "Hey", "color": "#112233", "position": "left", "negative_streak": 3,
        "score_threshold": -0.6, "allowed_origins_text": "https://a.example/\nhttps://b.example:8443",
        "handoff_phrases_text": "agente, humano"})
    assert response.status_code == 302
    widget.refresh_from_db()
    assert widget.allowed_origins == ["https://a.example", "https://b.example:8443"]
    assert widget.handoff_phrases == ["agente", "humano"] and widget.negative_streak == 3


def test_outsiders_and_agents_cannot_configure_widgets(widget, bob, charlie):
    assert charlie.client.get(f"/chat/widgets/{widget.pk}/").status_code == 404
    assert bob.client.get(f"/chat/widgets/{widget.pk}/").status_code == 403


def test_a_verified_customers_token_alone_never_opens_their_history(client, widget):
    identity = {"id": "cust-7", "hash": identity_hash(widget, "cust-7")}
    token = session(client, widget, identity=identity).json()["visitor_token"]
    anonymous = session(client, widget, visitor_token=token).json()  # shared computer, nobody signed in
    assert anonymous["visitor_token"] != token
    assert Visitor.objects.get(token=anonymous["visitor_token"]).external_id == ""


def test_the_new_widget_form_picks_the_only_bot_and_offers_a_choice_between_several(alice, widget, catalog):
    from store import deploy

    page = alice.client.get("/chat/widgets/").content.decode()
    assert f'<option value="{widget.deployment_id}" selected>' in page
    deploy.create_or_update(alice.organization, "second-bot", deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    page = alice.client.get("/chat/widgets/").content.decode()
    choices = page.split('name="deployment"')[1].split("</select>")[0]
    assert '<option value="" selected>' in choices and choices.count("selected>") == 1  # the admin chooses


def test_the_widget_list_shows_each_widget_s_models_sites_and_conversations(alice, charlie, widget, catalog):
    from chat.conversations import current_conversation
    from chat.identity import open_visitor
    from chat.widgets import create_widget
    from store import deploy

    current_conversation(open_visitor(widget), create=True)
    current_conversation(open_visitor(widget), create=True)
    theirs = deploy.create_or_update(charlie.organization, "their-bot",
                                     deploy.ModelChoice(base=catalog["smollm2-135m-instruct"]))
    other = create_widget(charlie.organization, theirs, None, [], title="Charlie help")
    current_conversation(open_visitor(other), create=True)

    page = alice.client.get("/chat/widgets/").content.decode()
    row = page.split('id="widget-table"')[1].split("</table>")[0]
    assert "Alice help" in row and "<code>acme-support</code>" in row and "<code>acme-sentiment</code>" in row
    assert "https://shop.alice.example" in row and "<td>2</td>" in row
    assert "Charlie help" not in page and 'id="widgets-need-bot"' not in page
    theirs_page = charlie.client.get("/chat/widgets/").content.decode()
    assert "none yet: no site can embed it" in theirs_page and "<td>1</td>" in theirs_page
    assert "Alice help" not in theirs_page


def test_the_widget_page_of_an_organization_without_a_bot_says_to_deploy_one_first(charlie):
    page = charlie.client.get("/chat/widgets/").content.decode()
    assert 'id="widgets-need-bot"' in page and 'href="/deployments/new/"' in page
