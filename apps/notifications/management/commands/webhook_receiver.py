"""Run the reference webhook receiver on this machine, to watch signed deliveries arrive.

    manage.py webhook_receiver --secret whsec_... [--port 8765]

Subscribe http://127.0.0.1:PORT/hooks (MC_WEBHOOKS_ALLOW_PRIVATE must be on for a loopback target)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from apps.notifications.receiver import WebhookReceiver


class Command(BaseCommand):
    help = "Run a local webhook receiver that verifies signatures, refuses stale timestamps and de-duplicates."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--secret", required=True, help="The subscription's whsec_ secret.")
        parser.add_argument("--port", type=int, default=8765)

    def handle(self, *args: Any, **options: Any) -> None:
        receiver = WebhookReceiver(options["secret"], port=options["port"])
        url = receiver.start()
        self.stdout.write(f"listening on {url} (Ctrl-C to stop)")
        shown = 0
        try:
            while True:
                time.sleep(0.5)
                for entry in receiver.log.processed[shown:]:
                    self.stdout.write(json.dumps(entry["payload"], indent=2))
                shown = len(receiver.log.processed)
        except KeyboardInterrupt:
            pass
        finally:
            receiver.stop()
            self.stdout.write(
                f"processed {len(receiver.log.processed)}, duplicates {len(receiver.log.duplicates)}, "
                f"refused {len(receiver.log.refused)}"
            )
