from django.apps import AppConfig


class DemoConfig(AppConfig):
    """The demo world `seed_demo` builds. The top layer: it seeds through every app's services, and no app imports
    it."""

    name = "apps.demo"
    label = "demo"
