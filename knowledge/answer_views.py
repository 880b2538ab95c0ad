"""Where answers are tried: "ask the knowledge base", a deployment's knowledge settings, the playground.

The playground streams exactly what the widget and /v1 would answer (knowledge/replies.py).
"""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required
from accounts.scoping import get_for_organization
from core.text import InvalidText, decode_json
from knowledge import client as knowledge_client
from knowledge import deployments as knowledge_settings
from knowledge import question_check
from knowledge.api import reply_sse, streaming_response
from knowledge.forms import AskForm, DeploymentKnowledgeForm, QuestionListForm
from knowledge.models import KnowledgeBase
from knowledge.policy import DEFAULT_THRESHOLD, decide, retrieval_queries
from knowledge.replies import ReplyResult, Served, quoted_reply, stream_reply
from store.api.completions import inference_error
from store.api.errors import ApiError
from store.inference.client import InferenceError, InferenceUnavailable
from store.models import Deployment, DeploymentStatus, Task

MAX_PLAYGROUND_TURNS = 20
MAX_TURN_CHARS = 8000


def _org(request: HttpRequest):
    return request.organization  # type: ignore[attr-defined]


def _deployment(request: HttpRequest, slug: str) -> Deployment:
    queryset = Deployment.objects.select_related("tuned_model__base", "base_model", "organization")
    return get_for_organization(queryset, _org(request), slug=slug)


# --- ask the knowledge base ------------------------------------------------------------------------


def _ask_setup(request: HttpRequest, slug: str) -> tuple[KnowledgeBase, AskForm, Deployment | None]:
    knowledge_base = get_for_organization(KnowledgeBase, _org(request), slug=slug)
    attached = [a.deployment for a in knowledge_base.deployments.select_related("deployment__base_model",
                                                                                  "deployment__tuned_model__base")]
    form = AskForm(request.POST, deployments=attached)
    chosen = None
    if form.is_valid() and form.cleaned_data["deployment"]:
        chosen = next((d for d in attached if d.slug == form.cleaned_data["deployment"]), None)
    return knowledge_base, form, chosen


@require_POST
@organization_admin_required
async def ask(request: HttpRequest, slug: str) -> HttpResponse:
    """The passages found for a question (with their scores) and the answer the bot would give."""
    knowledge_base, form, deployment = await sync_to_async(_ask_setup)(request, slug)
    context: dict = {"knowledge_base": knowledge_base, "question": request.POST.get("question", "")}
    if not form.is_valid():
        context["error"] = "Type a question."
        return render(request, "knowledge/partials/ask_result.html", context, status=400)
    question = form.cleaned_data["question"]
    turns = [{"role": "user", "content": question}]
    try:
        result = None
        if deployment is not None:
            async for event in stream_reply(Served.deployment(deployment), turns, source="playground"):
                if event.kind == "done":
                    result = event.result
            candidates = result.candidates if result is not None else []
        else:
            lookup = retrieval_queries(turns)
            index_key = await sync_to_async(lambda: knowledge_base.index_key)()  # reads its embedding model
            found = await knowledge_client.retrieve(knowledge_base.pk, lookup, index_key=index_key)
            candidates = found.candidates
            decision = decide(candidates, DEFAULT_THRESHOLD, lookup.parts_from, message=question)
            text, outcome = quoted_reply(decision, handoff=True)
            result = ReplyResult(text, outcome, confidence=decision.confidence, passages=decision.shown,
                                 unstated=decision.unstated, searched=found.corrected(lookup),
                                 marked_wrong=found.marked_wrong)
    except (InferenceError, InferenceUnavailable) as error:
        context["error"] = inference_error(error).message
        return render(request, "knowledge/partials/ask_result.html", context, status=503)
    context.update({"candidates": candidates, "result": result, "deployment": deployment,
                    "threshold": DEFAULT_THRESHOLD})
    return render(request, "knowledge/partials/ask_result.html", context)


def _check_setup(request: HttpRequest, slug: str) -> tuple[KnowledgeBase, str, dict[float, list[str]]]:
    knowledge_base = get_for_organization(KnowledgeBase, _org(request), slug=slug)
    used_by: dict[float, list[str]] = {DEFAULT_THRESHOLD: ["default"]}
    for attached in knowledge_base.deployments.select_related("deployment").order_by("deployment__name"):
        used_by.setdefault(round(attached.threshold, 3), []).append(attached.deployment.name)
    return knowledge_base, knowledge_base.index_key, used_by


@require_POST
@organization_admin_required
async def check_questions(request: HttpRequest, slug: str) -> HttpResponse:
    """A list of questions, each as a customer's first message: what the bot would do with it, and how many
    of them each threshold answers, gives "not sure" or "I don't know"."""
    knowledge_base, index_key, used_by = await sync_to_async(_check_setup)(request, slug)
    form = QuestionListForm(request.POST)
    context: dict = {"knowledge_base": knowledge_base, "threshold": DEFAULT_THRESHOLD}
    if not form.is_valid():
        context["error"] = " ".join(str(error) for error in form.errors["questions"])
        return render(request, "knowledge/partials/check_result.html", context, status=400)
    try:
        checked = await question_check.check_questions(knowledge_base.pk, form.cleaned_data["questions"], index_key)
    except (InferenceError, InferenceUnavailable) as error:
        context["error"] = inference_error(error).message
        return render(request, "knowledge/partials/check_result.html", context, status=503)
    context.update({"rows": [(item, *item.at(DEFAULT_THRESHOLD)) for item in checked],
                    "thresholds": question_check.threshold_rows(checked, used_by)})
    return render(request, "knowledge/partials/check_result.html", context)


# --- a deployment's knowledge settings -----------------------------------------------------------


@organization_admin_required
def deployment_knowledge(request: HttpRequest, slug: str) -> HttpResponseBase:
    """The settings card on the deployment page (an htmx partial) and its form's target."""
    deployment = _deployment(request, slug)
    settings = knowledge_settings.current(deployment)
    # A bot never given knowledge settings, in an organization with exactly one knowledge base: that one is
    # chosen in the form (saving attaches it), a new business's next step; nothing changes until the admin
    # saves, and a bot whose knowledge was detached on purpose is not offered it again.
    suggested = None
    if settings.pk is None and deployment.task == Task.DIALOGUE:
        bases = list(KnowledgeBase.objects.filter(organization=_org(request))[:2])
        suggested = bases[0] if len(bases) == 1 else None
    form = DeploymentKnowledgeForm(request.POST or None, organization=_org(request), initial={
        "knowledge_base": settings.knowledge_base or suggested, "policy": settings.policy,
        "threshold": settings.threshold, "when_unsure": settings.when_unsure})
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                knowledge_settings.configure(deployment, knowledge_base=data["knowledge_base"], policy=data["policy"],
                                             threshold=data["threshold"], when_unsure=data["when_unsure"],
                                             user=request.user)
            except ValidationError as error:
                messages.error(request, " ".join(error.messages))
            else:
                messages.success(request, "Knowledge settings saved as a new revision.")
        else:
            messages.error(request, "Check the knowledge settings: " + "; ".join(
                f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items()))
        return redirect("store:deployment_detail", slug)
    return render(request, "knowledge/partials/deployment_knowledge.html", {
        "deployment": deployment, "settings": settings, "form": form, "suggested": suggested,
        "dialogue": deployment.task == Task.DIALOGUE})


# --- the playground ----------------------------------------------------------------------------------


def _playground_target(request: HttpRequest, slug: str) -> Deployment:
    deployment = _deployment(request, slug)
    if deployment.status != DeploymentStatus.ACTIVE:
        raise ApiError(409, "This deployment is paused.", code="deployment_paused")
    return deployment


def _playground_turns(body: bytes) -> list[dict]:
    """The conversation of a playground request, or an ApiError naming what is wrong with the body."""
    try:
        payload = decode_json(body or b"{}")
    except InvalidText as error:
        raise ApiError(400, str(error)) from None
    if not isinstance(payload, dict):
        raise ApiError(400, "The body must be a JSON object {messages: [...]}.")
    conversation = payload.get("messages", [])
    if not isinstance(conversation, list):
        raise ApiError(400, "messages must be a list of {role, content} objects.", param="messages")
    turns = []
    for index, message in enumerate(conversation):
        where = f"messages[{index}]"
        if not isinstance(message, dict):
            raise ApiError(400, f"{where} must be an object {{role, content}}.", param=where)
        if not isinstance(message.get("role"), str):
            raise ApiError(400, f"{where}.role must be a string.", param=f"{where}.role")
        if not isinstance(message.get("content", ""), str):
            raise ApiError(400, f"{where}.content must be a string.", param=f"{where}.content")
        if message["role"] in ("user", "assistant") and message.get("content"):
            turns.append({"role": message["role"], "content": message["content"][:MAX_TURN_CHARS]})
    turns = turns[-MAX_PLAYGROUND_TURNS:]
    if not turns or turns[-1]["role"] != "user":
        raise ApiError(400, "Send the conversation, ending with a user message.", param="messages")
    return turns


@organization_admin_required
async def playground_chat(request: HttpRequest, slug: str) -> HttpResponseBase:
    if request.method != "POST":
        return ApiError(405, "POST a JSON body {messages: [...]}.").response()
    try:
        deployment = await sync_to_async(_playground_target)(request, slug)
        turns = _playground_turns(request.body)
    except ApiError as error:
        return error.response()
    events = stream_reply(Served.deployment(deployment), turns, source="playground")
    return streaming_response(reply_sse(events, deployment.slug, True))
