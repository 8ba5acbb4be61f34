"""Load checklist templates shipped as JSON (default: fixtures/checklists/open-model-practices-v1.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand

from apps.checklists.services import default_template_file, template_load_file


class Command(BaseCommand):
    help = "Load checklist template files; a slug and version already present is left as it is."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("paths", nargs="*", help="JSON template files (default: the shipped default template)")

    def handle(self, *args: Any, **options: Any) -> None:
        for raw in options["paths"] or [str(default_template_file())]:
            template, created = template_load_file(path=Path(raw))
            verb = "loaded" if created else "already present:"
            self.stdout.write(f"{verb} {template.slug} v{template.version} ({template.items.count()} items)")
