# A deployment may serve an organization's hosted (OpenAI-compatible upstream) model instead of a tuned or
# catalog one: one more nullable foreign key, and the "exactly one model" check covers it.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("store", "0006_merge_heartbeat"),
        ("upstreams", "0001_initial"),
    ]

    operations = [
        migrations.RemoveConstraint(model_name="deployment", name="deployment_serves_exactly_one_model"),
        migrations.AddField(
            model_name="deployment",
            name="upstream_model",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name="deployments", to="upstreams.upstreammodel"),
        ),
        migrations.AddField(
            model_name="deploymentrevision",
            name="upstream_model",
            field=models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                                    related_name="+", to="upstreams.upstreammodel"),
        ),
        migrations.AddConstraint(
            model_name="deployment",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("base_model__isnull", True), ("tuned_model__isnull", False),
                             ("upstream_model__isnull", True)),
                    models.Q(("base_model__isnull", False), ("tuned_model__isnull", True),
                             ("upstream_model__isnull", True)),
                    models.Q(("base_model__isnull", True), ("tuned_model__isnull", True),
                             ("upstream_model__isnull", False)),
                    _connector="OR"),
                name="deployment_serves_exactly_one_model"),
        ),
    ]
