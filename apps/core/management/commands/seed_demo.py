from django.conf import settings
from django.core.management.base import BaseCommand

from apps.core.demo import DEMO_ACCOUNTS, seed_demo


class Command(BaseCommand):
    help = "Create the demo accounts, the digits benchmark and the demo variants (idempotent)."

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        password = settings.DEMO_PASSWORD
        summary = seed_demo(password)
        self.stdout.write(self.style.SUCCESS(
            f"demo ready: {summary['variants']} variants, benchmarks: {', '.join(summary['benchmarks'])}"))
        self.stdout.write("demo accounts (password from DEMO_PASSWORD):")
        for username, roles in DEMO_ACCOUNTS:
            self.stdout.write(f"  {username:<11} {', '.join(roles) or 'contributor'}  password: {password}")
