"""The payments dashboard: one event's, and every event's the member may see, for a
period chosen by dates (days in the event's timezone) or a preset (the last 7 or 30
days, all time; the last 30 days when nothing is chosen). A date that is not one, or a
period that ends before it starts, is a 400 that says so on the page. The numbers come
from ``storefront.reports``; the charts from ``storefront.charts``.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from flask import request, url_for
from flask_babel import format_date, format_decimal, format_percent
from flask_babel import gettext as _

from .. import charts, htmx, order_search, reports
from ..failure_reasons import REASON_LABELS
from ..models import Event, utcnow
from ..reports import BadPeriod, Granularity, Report
from . import bp
from .permissions import Permission, requires

PRESETS = ("7", "30", "all")


def _bad_period_words(error: BadPeriod) -> str:
    if error.kind == "reversed":
        return _("The period ends before it starts: choose an end date on or after the start date.")
    if error.kind == "too_long":
        return _("That period is longer than ten years: choose a later start date.")
    if error.field == "from":
        return _("The start date is not a date (use YYYY-MM-DD).")
    return _("The end date is not a date (use YYYY-MM-DD).")


def _bucket_label(start: datetime, granularity: Granularity) -> str:
    if granularity == Granularity.HOUR:
        return f"{format_date(start.date(), 'd MMM')} {start:%H}:00"
    if granularity == Granularity.DAY:
        return format_date(start.date(), "d MMM")
    return format_date(start.date(), "MMM yyyy")


def _charts(report: Report) -> dict:
    funnel = report.funnel
    funnel_bars = [
        charts.Bar(_("Carts created"), funnel.carts, format_decimal(funnel.carts)),
        charts.Bar(_("Checkouts started"), funnel.checkouts, format_decimal(funnel.checkouts)),
        charts.Bar(_("Paid orders"), funnel.paid_orders, format_decimal(funnel.paid_orders)),
    ]
    reason_bars = [
        charts.Bar(_reason_label(r.reason), r.count, format_decimal(r.count)) for r in report.attempts.reasons
    ]
    sales = report.sales
    labels = [_bucket_label(b, sales.granularity) for b in sales.buckets]
    return {
        "funnel": charts.bar_chart("chart-funnel", _("Funnel: carts, checkouts started, paid orders"), funnel_bars),
        "reasons": charts.bar_chart("chart-reasons", _("Attempts that did not pay, by reason"), reason_bars)
        if reason_bars
        else None,
        "sales": charts.stacked_chart(
            "chart-sales",
            _("Tickets sold per ticket type, by %(unit)s", unit=_granularity_words(sales.granularity)),
            labels,
            [(s.name, s.counts) for s in sales.series],
        )
        if sales.series
        else None,
        "bucket_labels": labels,
    }


def _granularity_words(granularity: Granularity) -> str:
    return {Granularity.HOUR: _("hour"), Granularity.DAY: _("day"), Granularity.MONTH: _("month")}[granularity]


def _reason_label(reason) -> str:
    return REASON_LABELS[reason] if reason is not None else _("Abandoned (no failure reported)")


def _render(access, event: Event | None):
    event_ids = [event.id] if event is not None else order_search.visible_event_ids(access.membership)
    timezone = event.timezone if event is not None else reports.timezone_of(event_ids)
    now = utcnow()
    today = now.astimezone(ZoneInfo(timezone)).date()
    raw_from, raw_to = request.args.get("from", ""), request.args.get("to", "")
    chosen = request.args.get("preset", "")
    error = None
    try:
        if raw_from or raw_to:
            period = reports.period_of(raw_from, raw_to, timezone, today)
            chosen = ""
        else:
            chosen = chosen if chosen in PRESETS else "30"
            period = reports.preset(chosen, timezone, today)
    except BadPeriod as bad:
        error = _bad_period_words(bad)
    action = url_for(request.endpoint, **(request.view_args or {}))
    context = {
        "access": access,
        "event": event,
        "timezone": timezone,
        "action": action,
        "preset": chosen,
        "raw_from": raw_from,
        "raw_to": raw_to,
        "error": error,
        "presets": [("7", _("Last 7 days")), ("30", _("Last 30 days")), ("all", _("All time"))],
    }
    if error is not None:
        return htmx.render("admin/report.html", "admin/report.html", status=400, report=None, **context)
    report = reports.report(event_ids, period, now)
    rate = report.attempts.success_rate
    return htmx.render(
        "admin/report.html",
        "admin/report.html",
        report=report,
        charts=_charts(report),
        success_rate=format_percent(rate, "#,##0.0%") if rate is not None else "–",
        reason_label=_reason_label,
        **context,
    )


@bp.get("/o/<organiser>/reports")
@requires(Permission.VIEW_ORDERS)
def organiser_report(access):
    return _render(access, None)


@bp.get("/o/<organiser>/events/<event>/report")
@requires(Permission.VIEW_ORDERS, event=True)
def event_report(access):
    return _render(access, access.event)
