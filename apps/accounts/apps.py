from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "apps.accounts"
    label = "accounts"

    def ready(self) -> None:
        from django.contrib import admin

        from . import schema  # noqa: F401 - registers the OpenAPI auth extension
        from .login_limits import limit_admin_login
        from .token_cache import connect

        connect()

        limit_admin_login(admin.site)
