"""Knowledge in the org-scoped admin. Sources are added on the knowledge pages (where files are parsed
and validated); here admins review, rename, relink and remove them, and set deployments' policies."""

from django.contrib import admin

from accounts.admin_scoping import OrganizationScopedAdmin, OrganizationScopedInline
from knowledge import deployments, feedback, sources
from knowledge.models import DeploymentKnowledge, KnowledgeBase, KnowledgeSource, Passage, SourceVersion, WrongAnswer


class SourceInline(OrganizationScopedInline):
    model = KnowledgeSource
    fields = ["title", "kind", "url", "live_version", "updated_at"]
    readonly_fields = ["kind", "live_version", "updated_at"]
    show_change_link = True
    can_delete = False
    max_num = 0


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(OrganizationScopedAdmin):
    list_display = ["name", "organization", "embedding_base", "embedding_tuned", "revision", "updated_at"]
    list_filter = ["organization"]
    search_fields = ["name", "slug", "description"]
    readonly_fields = ["revision", "pending_base", "pending_tuned", "created_at", "updated_at"]
    inlines = [SourceInline]


class VersionInline(OrganizationScopedInline):
    model = SourceVersion
    fields = ["number", "status", "passage_count", "embedded_count", "error", "created_by", "created_at", "live_at"]
    readonly_fields = fields  # type: ignore[assignment]
    can_delete = False
    max_num = 0


@admin.register(KnowledgeSource)
class KnowledgeSourceAdmin(OrganizationScopedAdmin):
    list_display = ["title", "knowledge_base", "kind", "live_version", "updated_at"]
    list_filter = ["kind"]
    search_fields = ["title", "url"]
    fields = ["knowledge_base", "title", "kind", "url", "live_version", "created_by", "created_at"]
    readonly_fields = ["knowledge_base", "kind", "live_version", "created_by", "created_at"]
    inlines = [VersionInline]

    def has_add_permission(self, request):
        return False  # files are parsed and validated on the knowledge pages

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "url" in form.changed_data:
            sources.relinked(obj)  # the next answer cites the new link

    def delete_model(self, request, obj):
        sources.delete_source(obj)  # the bot stops answering from it at once

    def delete_queryset(self, request, queryset):
        for source in queryset:
            sources.delete_source(source)


@admin.register(Passage)
class PassageAdmin(OrganizationScopedAdmin):
    list_display = ["title", "version", "position"]
    search_fields = ["title", "text", "question"]
    readonly_fields = ["version", "position", "title", "question", "text"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(DeploymentKnowledge)
class DeploymentKnowledgeAdmin(OrganizationScopedAdmin):
    list_display = ["deployment", "knowledge_base", "policy", "threshold", "when_unsure"]
    list_filter = ["policy", "when_unsure"]

    def save_model(self, request, obj, form, change):
        # Through the one action that validates and records a deployment revision.
        deployments.configure(obj.deployment, knowledge_base=obj.knowledge_base, policy=obj.policy,
                              threshold=obj.threshold, when_unsure=obj.when_unsure, user=request.user)


@admin.register(WrongAnswer)
class WrongAnswerAdmin(OrganizationScopedAdmin):
    """Agents' "mark wrong" (knowledge/feedback.py). Deleting one lets its entries answer the question again."""

    list_display = ["question", "knowledge_base", "marked_by", "created_at"]
    search_fields = ["question"]
    readonly_fields = ["knowledge_base", "question", "entries", "marked_by", "created_at"]

    def has_add_permission(self, request):
        return False  # made by "Mark wrong" in the console

    def has_change_permission(self, request, obj=None):
        return False

    def delete_model(self, request, obj):
        feedback.forget_wrong_answer(obj)

    def delete_queryset(self, request, queryset):
        for mark in queryset:
            feedback.forget_wrong_answer(mark)
