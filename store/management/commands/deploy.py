from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from store import deploy


class Command(BaseCommand):
    help = "Create or update a deployment (idempotent); prints the /v1 model id on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--model", required=True, help="tuned model slug (or ft: id) or catalog base slug")
        parser.add_argument("--name", required=True, help="deployment slug (its /v1 model id)")
        parser.add_argument("--display-name", help="human name (default: the slug)")
        parser.add_argument("--system-prompt")
        parser.add_argument("--temperature", type=float)
        parser.add_argument("--top-p", type=float)
        parser.add_argument("--max-tokens", type=int)

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")
        config = {"name": options["display_name"], "system_prompt": options["system_prompt"],
                  "temperature": options["temperature"], "top_p": options["top_p"],
                  "max_tokens": options["max_tokens"]}
        try:
            choice = deploy.find_model(organization, options["model"])
            deployment = deploy.create_or_update(organization, options["name"], choice,
                                                 **{k: v for k, v in config.items() if v is not None})
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        self.stdout.write(f"{deployment.name}: serves {deployment.served_model_label} ({deployment.task}), "
                          f"revision {deployment.revision}.")
        self.stdout.write(deployment.slug)
