from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "apps.reviews"
    label = "reviews"
    verbose_name = "Reviews, comments and flags"

    def ready(self) -> None:
        # Submissions, finished jobs and checklist changes reach the review gate only through the subscribers.
        from . import subscribers

        subscribers.register()
