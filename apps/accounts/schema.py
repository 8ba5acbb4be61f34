"""OpenAPI descriptions of the authentication schemes: bearer tokens, and HTTP Basic where a view takes it."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "mc_<token>",
            "description": "Personal access token from POST /api/v1/auth/tokens/",
        }


class BasicPasswordScheme(OpenApiAuthenticationExtension):
    target_class = "apps.accounts.authentication.BasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema):  # type: ignore[no-untyped-def]
        return {
            "type": "http",
            "scheme": "basic",
            "description": "Username and password; failed logins are limited (429 with Retry-After).",
        }
