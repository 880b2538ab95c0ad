from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.models import Organization
from chat.widgets import create_widget, embed_snippet
from store.models import Deployment


class Command(BaseCommand):
    help = "Create a chat widget for a deployment; prints the embed snippet, the public key on the last line."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--org", required=True, help="organization slug")
        parser.add_argument("--deployment", required=True, help="dialogue deployment slug")
        parser.add_argument("--sentiment-deployment", help="sentiment deployment slug (default: the organization's)")
        parser.add_argument("--allowed-origin", action="append", default=[], help="a site allowed to embed it")
        parser.add_argument("--title", default="Chat with us")
        parser.add_argument("--greeting")
        parser.add_argument("--site-url", default=settings.SITE_URL, help="public URL of this GPT Store")

    def handle(self, *args, **options) -> None:
        organization = Organization.objects.filter(slug=options["org"]).first()
        if organization is None:
            raise CommandError(f"No organization with slug {options['org']!r}.")

        def deployment(slug: str) -> Deployment:
            found = Deployment.objects.filter(organization=organization, slug=slug).first()
            if found is None:
                raise CommandError(f"{organization.slug} has no deployment {slug!r}.")
            return found

        config = {"title": options["title"]}
        if options["greeting"]:
            config["greeting"] = options["greeting"]
        try:
            widget = create_widget(
                organization, deployment(options["deployment"]),
                deployment(options["sentiment_deployment"]) if options["sentiment_deployment"] else None,
                options["allowed_origin"], **config)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from None
        if not widget.allowed_origins:
            self.stderr.write("No --allowed-origin given: no site can embed the widget until you add one.")
        self.stdout.write("Paste this before </body> on your site:")
        self.stdout.write(embed_snippet(widget, options["site_url"]))
        self.stdout.write(widget.public_key)
