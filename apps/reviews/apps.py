from django.apps import AppConfig


class ReviewsConfig(AppConfig):
    name = "apps.reviews"
    label = "reviews"
    verbose_name = "Reviews, comments and flags"

    def ready(self) -> None:
        from apps.benchmarks.hooks import JOB_FINISHED_HOOKS
        from apps.checklists.hooks import CHECKLIST_CHANGED_HOOKS
        from apps.registry.hooks import REVISION_SUBMITTED_HOOKS

        from .services import on_jobs_finished, on_revision_submitted, revision_try_auto_publish

        if on_revision_submitted not in REVISION_SUBMITTED_HOOKS:
            REVISION_SUBMITTED_HOOKS.append(on_revision_submitted)
        if on_jobs_finished not in JOB_FINISHED_HOOKS:
            JOB_FINISHED_HOOKS.append(on_jobs_finished)
        # An answer or a verification may complete the gate of an approved revision (MC_AUTO_PUBLISH).
        if revision_try_auto_publish not in CHECKLIST_CHANGED_HOOKS:
            CHECKLIST_CHANGED_HOOKS.append(revision_try_auto_publish)
