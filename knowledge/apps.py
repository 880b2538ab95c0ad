from django.apps import AppConfig


class KnowledgeConfig(AppConfig):
    name = "knowledge"
    verbose_name = "Knowledge"

    def ready(self) -> None:
        from knowledge import deployments
        from store import deploy
        from store.serving.worker import engine_ready

        # A deployment's knowledge settings are part of its revisions: rollback restores them.
        deploy.register_revision_part(deployments.REVISION_PART, deployments.snapshot, deployments.restore)
        engine_ready.connect(warm_up, dispatch_uid="knowledge-warm-up")


def warm_up(sender, engine, **kwargs) -> None:
    """In an inference worker: load the indexes of knowledge bases that active deployments answer from,
    and their embedding models, before the first customer asks."""
    from knowledge.models import DeploymentKnowledge
    from knowledge.worker import preload

    ids = set(DeploymentKnowledge.objects.filter(deployment__status="active", knowledge_base__isnull=False)
              .exclude(policy="off").values_list("knowledge_base_id", flat=True))
    preload(sorted(ids), engine)
