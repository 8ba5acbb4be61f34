from django.core.management.base import BaseCommand, CommandError

from apps.audit.services import SEAL_WAIT_S, audit_chain_verify, audit_newest_seal, audit_seal_is_known


class Command(BaseCommand):
    help = "Seal what can be sealed, then verify the audit log (seals, events, order) and name the first broken link."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--no-seal", action="store_true", help="verify only; do not seal pending events first")
        parser.add_argument(
            "--wait", type=float, default=SEAL_WAIT_S, help="seconds to wait for open transactions before sealing"
        )
        parser.add_argument(
            "--expect-seal",
            metavar="N:HASH",
            action="append",
            default=[],
            help="a seal seen before (printed by an earlier run, or logged when made) that must still be there",
        )

    def handle(self, *args, **options):  # type: ignore[no-untyped-def]
        expected = []
        for value in options["expect_seal"]:
            number, _, hash_ = value.partition(":")
            if not number.isdigit() or len(hash_) != 64:
                raise CommandError(f"--expect-seal takes N:HASH (a seal number and its 64-hex hash), not {value!r}")
            expected.append((int(number), hash_))
        report = audit_chain_verify(seal=not options["no_seal"], wait_s=options["wait"])
        if not report.ok:
            raise CommandError(
                f"audit log BROKEN at event #{report.broken_seq} (id={report.broken_id}): {report.reason}; "
                f"{report.checked} events before it verified"
            )
        for number, hash_ in expected:
            if not audit_seal_is_known(number, hash_):
                raise CommandError(f"audit log BROKEN: seal {number} with hash {hash_} is gone (log truncated?)")
        self.stdout.write(
            self.style.SUCCESS(
                f"audit log OK: {report.checked} events verified "
                f"({report.sealed} sealed in {report.seals} seals, {report.checked - report.sealed} not yet)"
            )
        )
        newest = audit_newest_seal()
        if newest is not None:
            self.stdout.write(f"newest seal: --expect-seal {newest.number}:{newest.hash} (#{newest.last_seq})")
