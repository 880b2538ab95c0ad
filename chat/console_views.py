"""The agent console (agents and admins of the active organization) and the widget settings (admins)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import date

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.db.models import Count, F, Q
from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from accounts.access import organization_admin_required, organization_required
from accounts.scoping import get_for_organization
from chat import agents
from chat.conversations import mark_read
from chat.forms import CannedReplyForm, WidgetForm
from chat.insights import insights
from chat.models import CannedReply, Conversation, ConversationStatus, Visitor, Widget
from chat.records import (
    EXPORT_FORMATS,
    BadPeriod,
    csv_lines,
    erase_visitor,
    json_lines,
    jsonl_lines,
    parse_period,
    transcript_chunks,
)
from chat.timeline import sentiment_timeline
from chat.widgets import embed_snippet, frame_ancestors, sentiment_deployment_for
from core.bounds import DAYS_IN_RANGE, EARLIEST_DATE, LATEST_DATE
from core.charts import bar_chart

# Worst first; conversations not scored yet come after scored ones on every database.
SORTS = {"sentiment": (F("sentiment_score").asc(nulls_last=True), "-last_message_at"),
         "recent": ("-last_message_at",)}


def _org(request: HttpRequest):
    return request.organization  # type: ignore[attr-defined]


def _conversations(request: HttpRequest):
    conversations = Conversation.objects.filter(organization=_org(request)).select_related("visitor", "assignee")
    status = request.GET.get("status", "open")
    if status == "open":
        conversations = conversations.exclude(status=ConversationStatus.RESOLVED)
    elif status in ConversationStatus.values:
        conversations = conversations.filter(status=status)
    query = request.GET.get("q", "").strip()[:100]
    if query:
        conversations = conversations.filter(Q(messages__text__icontains=query) | Q(visitor__name__icontains=query)
                                             | Q(visitor__email__icontains=query)).distinct()
    sort = request.GET.get("sort", "sentiment")
    return conversations.order_by(*SORTS.get(sort, SORTS["sentiment"])), status, sort, query


@organization_required
def console(request: HttpRequest) -> HttpResponse:
    conversations, status, sort, query = _conversations(request)
    context = {"conversations": conversations[:100], "status": status, "sort": sort, "query": query,
               "statuses": ConversationStatus.choices}
    template = "chat/partials/conversation_list.html" if request.htmx else "chat/console.html"  # type: ignore[attr-defined]
    return render(request, template, context)


def _conversation(request: HttpRequest, conversation_id: int) -> Conversation:
    queryset = Conversation.objects.select_related("visitor", "assignee", "widget__deployment",
                                                   "widget__sentiment_deployment")
    return get_for_organization(queryset, _org(request), pk=conversation_id)


def _conversation_context(conversation: Conversation) -> dict:
    transcript = list(conversation.messages.select_related("agent"))
    scorer = sentiment_deployment_for(conversation.widget)  # none: the page says why nothing is scored
    return {"conversation": conversation, "transcript": transcript, "scorer": scorer,
            "timeline": sentiment_timeline(transcript) if scorer else "",
            "canned": CannedReply.objects.filter(organization_id=conversation.organization_id)}


@organization_required
def conversation_detail(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    mark_read(conversation.pk)
    return render(request, "chat/conversation.html", _conversation_context(conversation))


@organization_required
def conversation_live(request: HttpRequest, conversation_id: int) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    return render(request, "chat/partials/conversation_live.html", _conversation_context(conversation))


def _seq(request: HttpRequest) -> int:
    value = request.POST.get("seq", "")
    if not value.isdigit():
        raise ValidationError("Which message? (seq is missing)")
    return int(value)


@require_POST
@organization_required
def conversation_action(request: HttpRequest, conversation_id: int, action: str) -> HttpResponse:
    conversation = _conversation(request, conversation_id)
    try:
        if action == "take-over":
            agents.take_over(conversation, request.user)
        elif action == "hand-back":
            agents.hand_back(conversation, request.user)
        elif action == "resolve":
            agents.resolve(conversation, request.user)
        elif action == "reply":
            agents.reply(conversation, request.user, request.POST.get("text", ""))
        elif action == "note":
            agents.note(conversation, request.user, request.POST.get("text", ""))
        elif action == "mark-wrong":
            agents.mark_wrong(conversation, request.user, _seq(request))
        elif action == "save-answer":
            source = agents.save_as_answer(conversation, request.user, _seq(request))
            messages.success(request, f"Saved to {source.knowledge_base.name}: the bot answers it once it is embedded.")
        else:
            return HttpResponse(status=404)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    if request.htmx:  # type: ignore[attr-defined]
        conversation.refresh_from_db()
        return render(request, "chat/partials/conversation_live.html", _conversation_context(conversation))
    return redirect("chat:conversation", conversation_id)


@organization_required
def canned_replies(request: HttpRequest) -> HttpResponse:
    organization = _org(request)
    is_admin = request.membership.is_admin  # type: ignore[attr-defined]
    form = CannedReplyForm(request.POST or None)
    if request.method == "POST":
        if not is_admin:
            return HttpResponse("Only admins manage canned replies.", status=403)
        if "delete" in request.POST:
            get_for_organization(CannedReply, organization, pk=request.POST["delete"]).delete()
            return redirect("chat:canned")
        if form.is_valid():
            reply = form.save(commit=False)
            reply.organization = organization
            reply.save()
            return redirect("chat:canned")
    return render(request, "chat/canned.html", {"form": form, "replies": CannedReply.objects.filter(
        organization=organization), "is_admin": is_admin})


def _period(request: HttpRequest) -> tuple[date, date]:
    """The ?start=&end= range of a console page or export; BadPeriod (its message for the client) when refused."""
    return parse_period(request.GET.get("start", ""), request.GET.get("end", ""), timezone.localdate())


@organization_admin_required
def insights_page(request: HttpRequest) -> HttpResponse:
    rule = {"longest": DAYS_IN_RANGE.high, "earliest": EARLIEST_DATE, "latest": LATEST_DATE}
    try:
        start, end = _period(request)
    except BadPeriod as problem:
        # The form comes back with what was typed (as much as a YYYY-MM-DD field holds), to correct in place.
        typed = {name: request.GET.get(name, "")[:10] for name in ("start", "end")}
        return render(request, "chat/insights.html", {**rule, **typed, "problem": str(problem)}, status=400)
    data = insights(_org(request), start, end)
    charts = {label: bar_chart([(day.strftime("%m-%d"), counts.get(label, 0)) for day, counts in data["distribution"]],
                               title=f"{label} messages per day", color=color, height=140)
              for label, color in (("negative", "#b42335"), ("neutral", "#8a8fa3"), ("positive", "#13795b"))}
    return render(request, "chat/insights.html", {**rule, "data": data, "charts": charts, "start": start.isoformat(),
                                                  "end": end.isoformat()})


EXPORTS = {"csv": (csv_lines, "text/csv; charset=utf-8"), "json": (json_lines, "application/json"),
           "jsonl": (jsonl_lines, "application/jsonl; charset=utf-8")}


@organization_admin_required
def export_transcripts(request: HttpRequest) -> HttpResponseBase:
    export_format = request.GET.get("format") or "csv"
    if export_format not in EXPORTS:
        return _refused(f"format must be {', '.join(EXPORT_FORMATS[:-1])} or {EXPORT_FORMATS[-1]}.")
    try:
        start, end = _period(request)
    except BadPeriod as problem:
        return _refused(str(problem))
    lines, content_type = EXPORTS[export_format]
    response = StreamingHttpResponse(streamed(request, lines(transcript_chunks(_org(request), start, end))),
                                     content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="transcripts-{start}-{end}.{export_format}"'
    return response


def _refused(problem: str) -> HttpResponse:
    return HttpResponse(problem, status=400, content_type="text/plain; charset=utf-8")


def streamed(request: HttpRequest, chunks: Iterator[bytes]) -> Iterator[bytes] | AsyncIterator[bytes]:
    """The chunks as the server can stream them.

    Under ASGI (Daphne), Django reads a plain iterator into one list before sending it, which is
    the whole file in memory; there each chunk (one query) is pulled through sync_to_async instead.
    """
    if not isinstance(request, ASGIRequest):
        return chunks

    async def pull() -> AsyncIterator[bytes]:
        while (chunk := await sync_to_async(_next_chunk)(chunks)) is not None:
            yield chunk

    return pull()


def _next_chunk(chunks: Iterator[bytes]) -> bytes | None:
    return next(chunks, None)


@require_POST
@organization_admin_required
def erase_visitor_data(request: HttpRequest, visitor_id: int) -> HttpResponse:
    visitor = get_for_organization(Visitor, _org(request), pk=visitor_id)
    erased = erase_visitor(visitor)
    messages.success(request, f"Erased visitor {erased.visitor_id}: {erased.conversations} conversation(s), "
                              f"{erased.messages} message(s) and their identity.")
    return redirect("chat:console")


# --- widget settings --------------------------------------------------------------------------


@organization_admin_required
def widget_list(request: HttpRequest) -> HttpResponse:
    organization = _org(request)
    form = WidgetForm(request.POST or None, organization=organization)
    if request.method == "POST" and form.is_valid():
        widget = form.save(commit=False)
        widget.organization = organization
        widget.save()
        messages.success(request, "Widget created. Paste the snippet into your site.")
        return redirect("chat:widget", widget.pk)
    widgets = (Widget.objects.filter(organization=organization).select_related("deployment", "sentiment_deployment")
               .annotate(conversation_count=Count("conversations")))
    return render(request, "chat/widgets.html", {"widgets": widgets, "form": form,
                                                  "has_bot": form.dialogue_deployments.exists()})


@organization_admin_required
def widget_detail(request: HttpRequest, widget_id: int) -> HttpResponse:
    widget = get_for_organization(Widget.objects.select_related("deployment"), _org(request), pk=widget_id)
    form = WidgetForm(request.POST or None, instance=widget, organization=_org(request))
    if request.method == "POST":
        if "regenerate_secret" in request.POST:
            import secrets

            widget.identity_secret = secrets.token_urlsafe(32)
            widget.save(update_fields=["identity_secret"])
            messages.success(request, "New identity secret: update your servers' HMAC code.")
            return redirect("chat:widget", widget.pk)
        if form.is_valid():
            form.save()
            messages.success(request, "Widget saved.")
            return redirect("chat:widget", widget.pk)
    return render(request, "chat/widget_detail.html", {
        "widget": widget, "form": form, "snippet": embed_snippet(widget, request.build_absolute_uri("/")),
        "csp": frame_ancestors(widget), "site_url": settings.SITE_URL})
