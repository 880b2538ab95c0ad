from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin, OrganizationScopedInline
from chat.models import CannedReply, Conversation, Message, Visitor, Widget


@admin.register(Widget)
class WidgetAdmin(OrganizationScopedAdmin):
    list_display = ["title", "organization", "deployment", "sentiment_deployment", "public_key", "created_at"]
    list_filter = ["organization"]
    search_fields = ["title", "public_key"]
    readonly_fields = ["public_key", "created_at"]


class MessageInline(OrganizationScopedInline):
    model = Message
    fields = ["seq", "author", "agent", "internal", "text", "sentiment_label", "sentiment_score", "created_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    max_num = 0


@admin.register(Conversation)
class ConversationAdmin(OrganizationScopedAdmin):
    list_display = ["pk", "organization", "visitor", "status", "assignee", "sentiment_score", "last_message_at",
                    "csat"]
    list_filter = ["status", "organization", "csat"]
    search_fields = ["visitor__name", "visitor__email", "visitor__external_id", "messages__text"]
    readonly_fields = ["last_seq", "sentiment_score", "sentiment_trend", "negative_streak", "created_at",
                       "last_message_at", "escalated_at", "first_agent_reply_at", "resolved_at"]
    inlines = [MessageInline]


@admin.register(Visitor)
class VisitorAdmin(OrganizationScopedAdmin):
    list_display = ["pk", "widget", "name", "email", "external_id", "created_at", "last_seen_at"]
    search_fields = ["name", "email", "external_id"]
    readonly_fields = ["token", "created_at", "last_seen_at"]


@admin.register(CannedReply)
class CannedReplyAdmin(OrganizationScopedAdmin):
    list_display = ["title", "organization", "created_at"]
    search_fields = ["title", "text"]


@admin.register(Message)
class MessageAdmin(OrganizationScopedAdmin):
    list_display = ["conversation", "seq", "author", "internal", "sentiment_label", "created_at", "text"]
    list_filter = ["author", "internal", "sentiment_label"]
    search_fields = ["text"]

    def has_add_permission(self, request):
        return False  # messages come through the widget and the console

    def has_change_permission(self, request, obj=None):
        return False
