import logging

from django.apps import AppConfig

logger = logging.getLogger(__name__)


class ReviewsConfig(AppConfig):
    name = "apps.reviews"
    label = "reviews"
    verbose_name = "Reviews, comments and flags"

    def ready(self) -> None:
        from .services import on_jobs_finished, on_revision_submitted

        try:
            from apps.registry.hooks import REVISION_SUBMITTED_HOOKS
        except ImportError:
            logger.warning("apps.registry.hooks is missing: no review-requested notifications")
        else:
            if on_revision_submitted not in REVISION_SUBMITTED_HOOKS:
                REVISION_SUBMITTED_HOOKS.append(on_revision_submitted)
        try:
            from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
        except ImportError:
            logger.warning("apps.benchmarks.hooks is missing: no auto-publish after a job")
        else:
            if on_jobs_finished not in JOB_FINISHED_HOOKS:
                JOB_FINISHED_HOOKS.append(on_jobs_finished)
