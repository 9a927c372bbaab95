"""The Django admin: browse jobs and their events; change jobs only by appending events.

Nothing here can edit or delete an event or a job row: add, change and delete
are refused for both models, and the database would refuse them anyway. The
two actions, cancel and run again, append events like any other code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from django_future import ledger
from django_future.audit import timeline
from django_future.dashboard import views as dashboard
from django_future.models import JobEvent, PeriodicChange, PeriodicTick, ScheduledJob

if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
else:
    _ModelAdmin = admin.ModelAdmin  # not subscriptable at run time


class _ReadOnly(_ModelAdmin):
    """No add, edit or delete of a ledger row for anyone, superusers too: Django shows
    every page read-only and answers a POST to the add, change or delete view with 403;
    with no delete permission it also leaves out its "delete selected" action. Seeing
    needs the model's view (or change) permission, as Django decides.

    The actions (cancel, run again) append events: they need the model's *change*
    permission (``has_append_permission``), and Django leaves them out of the page, and
    refuses them in a crafted POST, for a user without it."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_append_permission(self, request: HttpRequest) -> bool:
        """For actions with ``permissions=["append"]``: the model's change permission,
        which ``has_change_permission`` (False: no editing) no longer tells."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")

    def get_changelist_instance(self, request: HttpRequest) -> ChangeList:
        """The list, or IncorrectLookupParameters (Django then shows the whole list) with a
        message that says which filter was refused and why: a value PostgreSQL cannot
        compare (NUL, a lone surrogate) or a date the calendar lacks (year 99999999999)."""
        problem = _unusable(request.GET)
        if problem is None:
            try:
                return super().get_changelist_instance(request)
            except IncorrectLookupParameters as exc:
                problem = f"the filter is not valid here ({exc})"
            except OverflowError:
                problem = "a date in the filter is out of range"
        self.message_user(request, f"Filter ignored: {problem}.", messages.ERROR)
        raise IncorrectLookupParameters(problem)


def _unusable(query: QueryDict) -> str | None:
    """What makes a query string's value unusable in a query, or None."""
    for name, values in query.lists():
        for value in values:
            if "\x00" in value:
                return f"{name!r} contains a NUL character"
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return f"{name!r} is not valid text"
    return None


def _job_id(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 19 and int(text) < 2**63


class UniqueKeyFilter(admin.SimpleListFilter):
    """Jobs with a unique key or without; a list of every key would be as long as the
    table (keys are usually one per object: "sync-user-42"). Search finds one key."""

    title = "unique key"
    parameter_name = "has_unique_key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "With a key"), ("no", "Without")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(unique_key__isnull=self.value() == "no")
        return queryset


@admin.register(ScheduledJob)
class ScheduledJobAdmin(_ReadOnly):
    list_display = (
        "id",
        "callable_name",
        "status",
        "queue",
        "priority",
        "unique_key",
        "lock",
        "time_slot_start",
        "attempts",
        "runner",
        "execution_start",
        "execution_end",
    )
    list_filter = (
        "status",
        "queue",
        "priority",
        UniqueKeyFilter,
        "unique_while",
        "lock",
        "callable_name",
        "time_slot_start",
        "execution_start",
        "atomic",
    )
    # "=unique_key" and "=lock": the name exactly, as a job's key is looked up (the unique
    # index serves only the jobs that hold theirs; a search reads the table either way).
    search_fields = (
        "=id",
        "callable_name",
        "object_id",
        "runner",
        "error",
        "=unique_key",
        "=lock",
    )
    date_hierarchy = "time_slot_start"
    ordering = ("-time_slot_start", "-id")
    actions = ("cancel_jobs", "run_again")
    fieldsets = (
        (
            None,
            {"fields": ("callable_name", "status", "content_type", "object_id", "args", "kwargs")},
        ),
        ("Schedule", {"fields": ("time_slot_start", "time_slot_end", "created_at")}),
        (
            "Policy",
            {
                "fields": (
                    "queue",
                    "priority",
                    "unique_key",
                    "unique_while",
                    "lock",
                    "atomic",
                    "max_attempts",
                    "attempts",
                    "retry_delay",
                    "retry_max_delay",
                )
            },
        ),
        (
            "Last attempt",
            {"fields": ("runner", "execution_start", "execution_end", "return_value", "error")},
        ),
        ("Ledger", {"fields": ("last_seq", "last_hash", "event_timeline")}),
    )

    @admin.display(description="events")
    def event_timeline(self, job: ScheduledJob) -> SafeString:
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td><strong>{}</strong></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (e["seq"], e["kind"], e["at"], e["runner"] or "", e["detail"])
                for e in timeline(job.pk)
            ),
        )
        return format_html(
            "<table><thead><tr><th>seq</th><th>event</th><th>at</th><th>runner</th>"
            "<th>detail</th></tr></thead><tbody>{}</tbody></table>",
            rows,
        )

    def response_action(
        self, request: HttpRequest, queryset: QuerySet[Any], *args: Any, **kwargs: Any
    ) -> Any:
        """Run the chosen action, unless a selected id is no job id (a crafted POST):
        then say so and do nothing, rather than fail on the query."""
        bad = [s for s in request.POST.getlist(ACTION_CHECKBOX_NAME) if not _job_id(s)]
        if bad:
            shown = ", ".join(repr(s[:20]) for s in bad[:3])
            self.message_user(request, f"Not job ids: {shown}; nothing was done.", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, *args, **kwargs)

    def get_urls(self) -> list[URLPattern]:
        """The jobs dashboard (django_future/dashboard), staff only, before the model's own
        URLs (whose last one takes any path as a job's id)."""

        def view(request: HttpRequest) -> HttpResponse:
            return dashboard.dashboard(request, self.admin_site)

        page = path("dashboard/", self.admin_site.admin_view(view), name="django_future_dashboard")
        return [page, *super().get_urls()]

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> list[str]:
        return [str(f) for _name, options in self.fieldsets for f in options["fields"]]

    def _may_append(self, request: HttpRequest) -> None:
        """Django calls an action only for a user it lets see it; said again here, so that
        an action called some other way cannot append for a user without the permission."""
        if not self.has_append_permission(request):
            raise PermissionDenied

    @admin.action(description="Cancel the selected scheduled jobs", permissions=["append"])
    def cancel_jobs(self, request: HttpRequest, queryset: QuerySet[ScheduledJob]) -> None:
        self._may_append(request)
        who = request.user.get_username() or "admin"
        done, skipped = 0, []
        for job in queryset:
            try:
                ledger.cancel(job.pk, by=who, reason="cancelled from the admin")
                done += 1
            except ledger.JobStateError:
                skipped.append(f"{job.pk} ({job.status})")
        if done:
            self.message_user(request, f"Cancelled {done} job(s).", messages.SUCCESS)
        if skipped:
            self.message_user(
                request,
                "Only scheduled jobs can be cancelled; left as they were: " + ", ".join(skipped),
                messages.WARNING,
            )

    @admin.action(
        description="Run the selected jobs again (schedule a copy now)", permissions=["append"]
    )
    def run_again(self, request: HttpRequest, queryset: QuerySet[ScheduledJob]) -> None:
        self._may_append(request)
        who = request.user.get_username() or "admin"
        created, failed = [], []
        for job in queryset:
            try:
                created.append(job.reschedule("0s", by=who).pk)
            except ValueError as exc:
                failed.append(f"{job.pk}: {exc}")
        if created:
            ids = ", ".join(map(str, created))
            self.message_user(request, f"Scheduled copies: job(s) {ids}.", messages.SUCCESS)
        for problem in failed:
            self.message_user(request, f"Not scheduled: {problem}", messages.ERROR)


@admin.register(JobEvent)
class JobEventAdmin(_ReadOnly):
    list_display = ("id", "job_id", "seq", "kind", "at", "runner")
    list_filter = ("kind", "at")
    search_fields = ("=job_id", "runner")
    date_hierarchy = "at"
    ordering = ("-id",)
    readonly_fields = ("job_id", "seq", "kind", "at", "runner", "data", "hash")


@admin.register(PeriodicTick)
class PeriodicTickAdmin(_ReadOnly):
    """The ticks of the periodic schedules, newest first, each with its job; read-only,
    as the database keeps them (append-only)."""

    list_display = ("schedule", "tick", "job_link", "definition", "enqueued_at", "runner")
    list_filter = ("schedule",)
    search_fields = ("schedule",)
    ordering = ("-tick",)
    date_hierarchy = "tick"

    @admin.display(description="job")
    def job_link(self, obj: PeriodicTick) -> SafeString:
        url = reverse("admin:django_future_scheduledjob_change", args=[obj.job_id])
        return format_html('<a href="{}">{}</a>', url, obj.job_id)


@admin.register(PeriodicChange)
class PeriodicChangeAdmin(_ReadOnly):
    """Each periodic schedule's definitions as they changed, and its removal."""

    list_display = ("schedule", "hash", "definition", "at", "runner")
    list_filter = ("schedule",)
    ordering = ("-id",)


# The admin index links to the dashboard through this template (it extends the index
# that would have been used); a project that set its own index_template keeps it.
if admin.site.index_template is None:
    admin.site.index_template = "django_future/admin_index.html"
