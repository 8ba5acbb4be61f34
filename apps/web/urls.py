from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from .views import accounts, jobs, leaderboards, orgs, pages, variants

app_name = "web"
V = "variants/<str:owner>/<str:name>/"
urlpatterns = [
    path("", pages.home, name="home"),
    path("dashboard/", pages.dashboard, name="dashboard"),
    # Accounts
    path("signup/", accounts.signup, name="signup"),
    # Explicit template names: the admin ships its own registration/* templates, which would win otherwise.
    path("login/", accounts.login_view, name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password-reset/",
        auth_views.PasswordResetView.as_view(
            success_url=reverse_lazy("web:password_reset_done"),
            template_name="web/auth/password_reset_form.html",
            email_template_name="web/auth/password_reset_email.txt",
            subject_template_name="web/auth/password_reset_subject.txt",
        ),
        name="password_reset",
    ),
    path(
        "password-reset/sent/",
        auth_views.PasswordResetDoneView.as_view(template_name="web/auth/password_reset_done.html"),
        name="password_reset_done",
    ),
    path(
        "password-reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(
            success_url=reverse_lazy("web:password_reset_complete"),
            template_name="web/auth/password_reset_confirm.html",
        ),
        name="password_reset_confirm",
    ),
    path(
        "password-reset/done/",
        auth_views.PasswordResetCompleteView.as_view(template_name="web/auth/password_reset_complete.html"),
        name="password_reset_complete",
    ),
    path("tokens/", accounts.tokens, name="tokens"),
    path("tokens/<int:token_id>/revoke/", accounts.token_revoke_view, name="token-revoke"),
    # Variants
    path("variants/", variants.variant_list, name="variant-list"),
    path("variants/new/", variants.variant_propose, name="variant-propose"),
    path("variants/parent-suggestions/", variants.parent_suggestions, name="parent-suggestions"),
    path(V, variants.variant_detail, name="variant"),
    path(V + "edit/", variants.variant_edit, name="variant-edit"),
    path(V + "revisions/<int:number>/artifacts/", variants.artifact_upload, name="artifact-upload"),
    path(V + "revisions/<int:number>/checklist/<str:key>/", variants.checklist_answer, name="checklist-answer"),
    path(V + "revisions/<int:number>/reviews/", variants.review_submit, name="review-submit"),
    path(V + "comments/", variants.comment_create, name="comment-create"),
    path(V + "flags/", variants.flag_create, name="flag-create"),
    path(V + "revisions/<int:number>/<str:action>/", variants.revision_action, name="revision-action"),
    path(V + "jobs/new/", jobs.job_submit, name="job-submit"),
    path(V + "transfer/", variants.variant_transfer, name="variant-transfer"),
    path(V + "collaborators/", variants.collaborator_add, name="collaborator-add"),
    path(V + "collaborators/<str:username>/remove/", variants.collaborator_remove, name="collaborator-remove"),
    # Organizations and invitations
    path("orgs/", orgs.org_list, name="org-list"),
    path("orgs/new/", orgs.org_create, name="org-create"),
    path("orgs/<str:org>/", orgs.org_detail, name="org"),
    path("orgs/<str:org>/settings/", orgs.org_edit, name="org-edit"),
    path("orgs/<str:org>/delete/", orgs.org_delete, name="org-delete"),
    path("orgs/<str:org>/members/", orgs.org_members, name="org-members"),
    path("orgs/<str:org>/members/invite/", orgs.org_invite, name="org-invite"),
    path("orgs/<str:org>/members/<str:username>/role/", orgs.member_role, name="org-member-role"),
    path("orgs/<str:org>/members/<str:username>/remove/", orgs.member_remove, name="org-member-remove"),
    path("orgs/<str:org>/invitations/<int:pk>/revoke/", orgs.invitation_revoke, name="org-invitation-revoke"),
    path("invitations/", orgs.invitations, name="invitations"),
    path("invitations/<int:pk>/accept/", orgs.invitation_decide, {"decision": "accept"}, name="invitation-accept"),
    path("invitations/<int:pk>/decline/", orgs.invitation_decide, {"decision": "decline"}, name="invitation-decline"),
    # Jobs
    path("jobs/<int:job_id>/", jobs.job_detail, name="job"),
    path("jobs/<int:job_id>/progress/", jobs.job_progress, name="job-progress"),
    path("jobs/<int:job_id>/cancel/", jobs.job_cancel, name="job-cancel"),
    path("jobs/<int:job_id>/verify/", jobs.job_verify, name="job-verify"),
    path("jobs/<int:job_id>/retry/", jobs.job_retry, name="job-retry"),
    # Leaderboards
    path("leaderboards/", leaderboards.index, name="leaderboard-index"),
    path("leaderboards/suites/<slug:slug>/", leaderboards.suite, name="leaderboard-suite"),
    path("leaderboards/<slug:slug>/", leaderboards.benchmark, name="leaderboard"),
]
