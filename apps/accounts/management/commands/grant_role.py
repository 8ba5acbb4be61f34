from django.core.management.base import BaseCommand, CommandError

from apps.accounts.choices import Role
from apps.accounts.services import user_grant_role, user_revoke_role
from apps.core.errors import DomainError


class Command(BaseCommand):
    help = "Grant (or with --revoke, revoke) a role: reviewer or maintainer."

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("username")
        parser.add_argument("role", choices=Role.values)
        parser.add_argument("--revoke", action="store_true")

    def handle(self, *args, **opts):  # type: ignore[no-untyped-def]
        try:
            fn = user_revoke_role if opts["revoke"] else user_grant_role
            user = fn(username=opts["username"], role=opts["role"], actor=None)
        except DomainError as exc:
            raise CommandError(exc.detail)
        from apps.accounts.roles import user_roles

        self.stdout.write(self.style.SUCCESS(f"{user.username}: roles = {user_roles(user)}"))
