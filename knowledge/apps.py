from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge"

    def ready(self) -> None:
        from knowledge import deployments
        from store import deploy

        # A deployment's knowledge settings are part of its revisions: rollback restores them.
        deploy.register_revision_part(deployments.REVISION_PART, deployments.snapshot, deployments.restore)
        # Its warm-up in inference workers is hooked by workers/startup.py (the web never imports it).

