"""The Dash app of the console, on the Flask server of `web.py` (which has already checked the address,
the session and the CSRF token of every request). Six sections refresh on their own (dcc.Interval), each
with its "as of" time and an empty state; the review queue; the admin actions with step-up TOTP. Every
callback reads the caller's session again and checks the role itself: the page hiding a control is not
the defence."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import dash
import flask
import plotly.graph_objects as go
from dash import ALL, Input, Output, State, ctx, dcc, html
from dash.exceptions import PreventUpdate
from plotly.utils import PlotlyJSONEncoder
from sqlalchemy import Engine

from ticketguard.admin.login import LoginFailed, step_up
from ticketguard.config import Settings
from ticketguard.dashboard import actions, health, queries, web
from ticketguard.security.redact import mask_wallet

log = logging.getLogger(__name__)

SEVERITIES = ["low", "medium", "high", "critical"]


def _engine() -> Engine:
    return web.config().engine


def _settings() -> Settings:
    return web.config().settings


def _session() -> Any:
    session = web.current_session()
    if session is None:  # web._guard answered 401 already; this is the belt to its braces
        raise PreventUpdate
    return session


def _as_of(now: datetime) -> str:
    return f"as of {now:%Y-%m-%d %H:%M:%S} UTC"


def _empty(text: str) -> html.P:
    return html.P(text, className="empty")


def _table(
    rows: list[dict[str, Any]],
    columns: list[tuple[str, str]],
    table_id: str | None = None,
    cell: Callable[[str, dict[str, Any]], Any] | None = None,
) -> html.Table:
    head = html.Thead(html.Tr([html.Th(title) for _, title in columns]))
    body = html.Tbody(
        [
            html.Tr([html.Td(cell(key, row) if cell else _fmt(row.get(key))) for key, _ in columns])
            for row in rows
        ]
    )
    props: dict[str, Any] = {"className": "grid"}
    if table_id:
        props["id"] = table_id
    return html.Table([head, body], **props)


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{value:.1%}"


def _safely(section: str, build: Callable[[datetime], Any]) -> tuple[Any, str]:
    _session()
    now = datetime.now(UTC)
    try:
        return build(now), _as_of(now)
    except PreventUpdate:
        raise
    except Exception:
        log.exception("console section %s failed", section)
        return html.P(f"Cannot read the {section} data right now.", className="error"), _as_of(now)


def _refreshed(section: str, build: Callable[[datetime], Any], shown: str | None) -> tuple[Any, str, Any]:
    """A section's refresh: its body, "as of", and the digest of the body. A body equal to the one on screen
    (digest ``shown``) is not sent again, so the browser does not replace rows under the user's pointer (a
    click on a row being replaced is lost) and nothing is re-rendered for nothing."""
    body, as_of = _safely(section, build)
    digest = hashlib.sha256(json.dumps(body, cls=PlotlyJSONEncoder, sort_keys=True).encode()).hexdigest()
    if digest == shown:
        return dash.no_update, as_of, dash.no_update
    return body, as_of, digest


# ------------------------------------------------------------------------------------------ layout
def _section(key: str, title: str, *extra: Any) -> html.Section:
    return html.Section(
        [
            html.Div([html.H2(title), html.Span("", id=f"{key}-asof", className="asof")], className="head"),
            *extra,
            html.Div(_empty("Loading…"), id=f"{key}-body"),
            dcc.Store(id=f"{key}-digest"),
        ],
        id=f"section-{key}",
        className="card-section",
    )


def serve_layout() -> Any:
    if not flask.has_request_context():
        return html.Div(id="root")
    session = web.current_session()
    if session is None:
        return html.Div("Not logged in.", id="root")
    user = session.user
    csrf_note = "" if user.is_admin else "Admin actions need the admin role: they will be refused."
    return html.Div(
        [
            dcc.Interval(id="refresh", interval=int(_settings().dashboard_refresh_seconds * 1000)),
            html.Header(
                [
                    html.H1("ticketguard console"),
                    html.Span(f"{user.username} ({user.role})", id="whoami"),
                    html.Form(
                        [html.Button("Log out", id="logout", type="submit")],
                        method="POST",
                        action="/logout",
                        id="logout-form",
                    ),
                ]
            ),
            html.Main(
                [
                    _section("kpis", "KPIs"),
                    _section("fraud", "Real-time fraud"),
                    html.Div(id="detail", className="detail"),
                    _section("traffic", "Traffic and rate limits"),
                    _section("model", "Model"),
                    _section("health", "System health"),
                    _section(
                        "security",
                        "Security events",
                        dcc.Checklist(
                            id="severity-filter",
                            options=[{"label": s, "value": s} for s in SEVERITIES],
                            value=SEVERITIES,
                            inline=True,
                        ),
                    ),
                    _review_section(),
                    html.Section(
                        [
                            html.H2("Admin actions"),
                            html.P(csrf_note, className="note"),
                            html.Div(
                                [
                                    dcc.Dropdown(
                                        id="action-kind",
                                        options=[
                                            {"label": v, "value": k} for k, v in actions.ACTIONS.items()
                                        ],
                                        placeholder="Action",
                                        clearable=False,
                                    ),
                                    dcc.Input(
                                        id="action-target",
                                        placeholder="Wallet, IP, model version or id",
                                        type="text",
                                        debounce=False,
                                    ),
                                    dcc.Input(id="action-reason", placeholder="Reason", type="text"),
                                    dcc.Input(
                                        id="action-code",
                                        placeholder="Authenticator code (step-up)",
                                        type="text",
                                        autoComplete="one-time-code",
                                    ),
                                    html.Button("Apply", id="action-apply", n_clicks=0),
                                ],
                                className="action-form",
                            ),
                            html.Div(id="action-result", role="status"),
                        ],
                        id="section-actions",
                        className="card-section",
                    ),
                ]
            ),
        ],
        id="root",
    )


# ------------------------------------------------------------------------------------------ sections
def _kpis(now: datetime) -> Any:
    with _engine().connect() as conn:
        data = queries.kpis(conn, now, _settings())
    if data["empty"]:
        return _empty("No scored transactions in the last two hours.")
    cards = []
    for card in data["cards"]:
        value = card["value"]
        if card["key"] == "block_rate":
            shown = _pct(value)
        elif card["key"] == "revenue":
            shown = f"{value:,.2f}"
        elif value is None:
            shown = "—"
        else:
            shown = f"{value:,.1f}" if isinstance(value, float) else f"{value:,}"
        change = "—" if card["change"] is None else f"{card['change']:+.1%} vs previous hour"
        state = {True: "ok", False: "warn", None: "unknown"}[card["ok"]]
        cards.append(
            html.Div(
                [
                    html.Div(card["label"], className="label"),
                    html.Div(shown, className="value"),
                    html.Div(change, className="change"),
                    html.Div(f"target {card['target']}", className="target"),
                ],
                className=f"kpi {state}",
                id=f"kpi-{card['key']}",
            )
        )
    return html.Div(cards, className="kpis")


def _fraud(now: datetime) -> Any:
    settings = _settings()
    with _engine().connect() as conn:
        data = queries.fraud(conn, now)
    parts: list[Any] = []
    if data["scored"] == 0:
        parts.append(_empty("No scored transactions in the last hour."))
    else:
        width = data["bin_width"]
        fig = go.Figure(
            go.Bar(
                x=[(i + 0.5) * width for i in range(len(data["bins"]))],
                y=data["bins"],
                width=width * 0.95,
                marker_color="#3b6ea5",
            )
        )
        bands = [
            (0, settings.fraud_threshold_2fa, "#2e7d3222"),
            (settings.fraud_threshold_2fa, settings.fraud_threshold_review, "#f9a82522"),
            (settings.fraud_threshold_review, settings.fraud_threshold_block, "#ef6c0022"),
            (settings.fraud_threshold_block, 1, "#c6282822"),
        ]
        for low, high, colour in bands:
            fig.add_vrect(x0=low, x1=high, fillcolor=colour, line_width=0)
        fig.update_layout(
            height=260,
            margin={"l": 40, "r": 10, "t": 10, "b": 40},
            xaxis_title="fraud score",
            yaxis_title="transactions (last hour)",
            xaxis_range=[0, 1],
        )
        parts.append(dcc.Graph(figure=fig, id="score-histogram", config={"displayModeBar": False}))
    if not data["latest"]:
        parts.append(_empty("No high-risk decisions yet."))
    else:

        def cell(key: str, row: dict[str, Any]) -> Any:
            if key == "transaction_id":
                return html.Button(row[key], id={"type": "detail", "index": row[key]}, className="link")
            return _fmt(row.get(key))

        parts.append(
            _table(
                data["latest"],
                [
                    ("time", "Time"),
                    ("transaction_id", "Transaction"),
                    ("score", "Score"),
                    ("decision", "Decision"),
                    ("top_reason", "Top reason"),
                ],
                "fraud-latest",
                cell,
            )
        )
    return parts


def _traffic(now: datetime) -> Any:
    with _engine().connect() as conn:
        data = queries.traffic(conn, now, _settings())
    parts: list[Any] = [
        html.P(
            f"Global budget used in the last minute: {data['global_used']:,} of {data['global_budget']:,} "
            f"({data['global_used'] / data['global_budget']:.1%})",
            id="global-budget",
        )
    ]
    if data["per_minute"]:
        fig = go.Figure(
            go.Scatter(
                x=[p["minute"] for p in data["per_minute"]],
                y=[p["n"] for p in data["per_minute"]],
                mode="lines+markers",
            )
        )
        fig.update_layout(
            height=220, margin={"l": 40, "r": 10, "t": 10, "b": 40}, yaxis_title="scorings / minute"
        )
        parts.append(dcc.Graph(figure=fig, id="requests-per-minute", config={"displayModeBar": False}))
    else:
        parts.append(_empty("No scoring requests in the last hour."))
    parts.append(html.H3("Top IPs, last 5 minutes"))
    parts.append(
        _table(data["top_ips"], [("ip", "IP"), ("requests", "Requests")])
        if data["top_ips"]
        else _empty("No requests in the last 5 minutes.")
    )
    parts.append(html.H3("Rate-limited, last 5 minutes"))
    parts.append(
        _table(data["rate_limited"], [("ip", "IP (pseudonym)"), ("refusals", "Refusals")])
        if data["rate_limited"]
        else _empty("Nobody was rate-limited in the last 5 minutes.")
    )
    parts.append(html.H3("Blocked IPs"))
    parts.append(
        _table(data["blocked"], [("ip", "IP"), ("reason", "Reason"), ("by", "By"), ("until", "Until")])
        if data["blocked"]
        else _empty("No IP is blocked.")
    )
    return parts


def _model(now: datetime) -> Any:
    with _engine().connect() as conn:
        data = queries.model(conn, now)
    parts: list[Any] = []
    if data["live"] is None:
        parts.append(_empty("No model is live yet (ticketguard train --promote)."))
    else:
        live = data["live"]
        parts.append(
            html.P(f"Live: {live['version']} since {live['since'][:19]} ({live['action']})", id="model-live")
        )
        metrics = (data["card"] or {}).get("metrics") or {}
        flat = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
        if not flat:
            flat = {
                f"{k}.{k2}": v2
                for k, v in metrics.items()
                if isinstance(v, dict)
                for k2, v2 in v.items()
                if isinstance(v2, int | float)
            }
        if flat:
            parts.append(html.H3("Evaluation metrics"))
            parts.append(
                _table(
                    [{"metric": k, "value": v} for k, v in sorted(flat.items())][:16],
                    [("metric", "Metric"), ("value", "Value")],
                )
            )
    parts.append(html.H3("Realised on labels that have arrived"))
    as_of = data["realised_as_of"]
    parts.append(
        html.P(
            "Decisions whose labels arrived in the window (flagged = BLOCKED or MANUAL_REVIEW); from the "
            + (f"views refreshed at {as_of:%Y-%m-%d %H:%M} UTC" if as_of else "realised_hourly view")
            + " (every 5 minutes).",
            className="note",
        )
    )
    rows = []
    for window, r in data["realised"].items():
        rows.append(
            {
                "window": window,
                "labelled": r["labelled"],
                "precision": _pct(r["precision"]),
                "recall": _pct(r["recall"]),
                "tp": r["tp"],
                "fp": r["fp"],
                "fn": r["fn"],
                "tn": r["tn"],
            }
        )
    if all(r["labelled"] == 0 for r in data["realised"].values()):
        parts.append(_empty("No labels have arrived for the last 7 days' decisions."))
    else:
        parts.append(
            _table(
                rows,
                [
                    ("window", "Window"),
                    ("labelled", "Labelled"),
                    ("precision", "Precision"),
                    ("recall", "Recall"),
                    ("tp", "TP"),
                    ("fp", "FP"),
                    ("fn", "FN"),
                    ("tn", "TN"),
                ],
                "model-realised",
            )
        )
    parts.append(html.H3("Feature drift"))
    parts.append(_empty("Not computed yet: drift is filled by the model-operations work when it lands."))
    if data["versions"]:
        parts.append(html.P("Versions: " + ", ".join(data["versions"]), className="note"))
    return parts


def _health(now: datetime) -> Any:
    rows, jobs = health.check(_settings(), _engine())
    return [
        _table(
            rows, [("component", "Component"), ("status", "Status"), ("detail", "Detail")], "health-table"
        ),
        html.H3("Scheduler: last run of each job"),
        _table(
            jobs,
            [
                ("job", "Job"),
                ("status", "Status"),
                ("started", "Started"),
                ("finished", "Finished"),
                ("error", "Error"),
            ],
        ),
    ]


def _security(now: datetime, severities: list[str]) -> Any:
    with _engine().connect() as conn:
        data = queries.security(conn, now, severities=severities or SEVERITIES)
    parts: list[Any] = []
    parts.append(
        _table(
            data["events"],
            [
                ("time", "Time"),
                ("type", "Type"),
                ("severity", "Severity"),
                ("source", "Source"),
                ("details", "Details"),
            ],
            "security-events",
        )
        if data["events"]
        else _empty("No security events of these severities in the last 7 days.")
    )
    parts.append(html.H3("Automated responses in force"))
    if data["responses"]:

        def cell(key: str, row: dict[str, Any]) -> Any:
            if key == "revert":
                return html.Button("Revert…", id={"type": "revert", "index": row["id"]}, className="link")
            return _fmt(row.get(key))

        parts.append(
            _table(
                data["responses"],
                [
                    ("id", "Id"),
                    ("rule", "Rule"),
                    ("action", "Action"),
                    ("target", "Target"),
                    ("since", "Since"),
                    ("until", "Until"),
                    ("revert", ""),
                ],
                "responses",
                cell,
            )
        )
    else:
        parts.append(_empty("No automated response is in force."))
    return parts


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def _reviews(now: datetime) -> Any:
    from ticketguard.reviews import service as reviews

    with _engine().connect() as conn:
        stats = reviews.queue_stats(conn, now=now)
        cases = reviews.queue(conn, now=now, limit=25)
    summary = html.P(
        f"{stats.size} case(s) waiting, {stats.claimed} claimed; "
        f"oldest waits {_age(stats.oldest_age_seconds)}",
        id="queue-stats",
    )
    if not cases:
        return [summary, _empty("No case waits for review.")]
    rows = [
        {
            "time": c.scored_at.strftime("%Y-%m-%d %H:%M:%S"),
            "transaction_id": c.transaction_id,
            "score": None if c.score is None else round(c.score, 3),
            "age": _age(c.age_seconds(now)),
            "top_reason": c.reasons[0] if c.reasons else "",
            "status": c.status + (f" by {c.claimed_by}" if c.status == "claimed" and c.claimed_by else ""),
        }
        for c in cases
    ]

    def cell(key: str, row: dict[str, Any]) -> Any:
        if key == "transaction_id":
            return html.Button(row[key], id={"type": "case", "index": row[key]}, className="link")
        return _fmt(row.get(key))

    columns = [
        ("time", "Scored"),
        ("transaction_id", "Transaction"),
        ("score", "Score"),
        ("age", "Waiting"),
        ("top_reason", "Top reason"),
        ("status", "Status"),
    ]
    return [summary, _table(rows, columns, "review-queue", cell)]


def _review_section() -> html.Section:
    outcomes = [{"label": "fraud", "value": "fraud"}, {"label": "legitimate", "value": "legitimate"}]
    return html.Section(
        [
            html.Div(
                [html.H2("Review queue"), html.Span("", id="reviews-asof", className="asof")],
                className="head",
            ),
            html.Div(_empty("Loading…"), id="reviews-body"),
            dcc.Store(id="reviews-digest"),
            dcc.Store(id="case-id"),
            html.Div(id="case-body"),
            html.Div(
                [
                    html.Button("Claim", id="case-claim", n_clicks=0),
                    html.Button("Release", id="case-release", n_clicks=0),
                    dcc.RadioItems(id="case-outcome", options=outcomes, inline=True),
                    dcc.Input(id="case-note", placeholder="Note (why)", type="text"),
                    html.Button("Decide", id="case-decide", n_clicks=0),
                ],
                className="case-actions",
                id="case-actions",
            ),
            html.Div(id="review-result", role="status"),
        ],
        id="section-reviews",
        className="card-section",
    )


def _case_body(transaction_id: str | None) -> Any:
    from ticketguard.reviews import service as reviews

    if not transaction_id:
        return _empty(
            "Open a case from the queue to see its features, contributions and the wallet's history."
        )
    now = datetime.now(UTC)
    try:
        with _engine().connect() as conn:
            detail = reviews.case_detail(conn, transaction_id, now=now)
    except reviews.ReviewError as exc:
        return html.P(str(exc), className="error")
    case_ = detail["case"]
    status = case_.status
    if status == "claimed":
        status += f" by {case_.claimed_by} until {case_.claim_expires_at:%H:%M:%S} UTC"
    if status == "decided":
        status += f": {case_.outcome} by {case_.decided_by} ({case_.note or ''})"
    history = [
        {
            "time": h["timestamp"].strftime("%Y-%m-%d %H:%M") if h.get("timestamp") else "",
            "transaction": h["transaction_id"],
            "event": h.get("event_id"),
            "price": float(h["price_paid"]) if h.get("price_paid") is not None else None,
            "decision": h.get("decision") or "",
            "label": ""
            if h.get("labelled_fraud") is None
            else ("fraud" if h["labelled_fraud"] else "legitimate"),
        }
        for h in detail["wallet_history"]
    ]
    summary = detail["wallet_summary"]
    price = float(case_.price) if case_.price is not None else None
    history_columns = [
        ("time", "Time"),
        ("transaction", "Transaction"),
        ("event", "Event"),
        ("price", "Price"),
        ("decision", "Decision"),
        ("label", "Label"),
    ]
    return html.Div(
        [
            html.H3(f"Case {transaction_id}"),
            html.P(
                f"score {_fmt(case_.score)} · wallet {mask_wallet(case_.wallet_address or '')} · "
                f"event {case_.event_id} · price {_fmt(price)}"
            ),
            html.P(f"Status: {status}", id="case-status"),
            html.H3("Reasons"),
            html.Ul([html.Li(str(r)) for r in detail["reasons"]] or [html.Li("—")]),
            html.H3("Contributions"),
            _table(
                detail["contributions"],
                [("feature", "Feature"), ("value", "Value"), ("contribution", "Contribution")],
                "case-contributions",
            ),
            html.H3("All features"),
            _table(
                [{"feature": k, "value": v} for k, v in sorted(detail["features"].items())],
                [("feature", "Feature"), ("value", "Value")],
                "case-features",
            ),
            html.H3("The wallet's recent history"),
            html.P(", ".join(f"{k}: {v}" for k, v in summary.items()), className="note"),
            _table(history, history_columns, "case-history")
            if history
            else _empty("No other transaction of this wallet."),
        ],
        id="case-view",
    )


# ------------------------------------------------------------------------------------------ callbacks
def _register(app: dash.Dash) -> None:
    for key, build in (
        ("kpis", _kpis),
        ("fraud", _fraud),
        ("traffic", _traffic),
        ("model", _model),
        ("health", _health),
        ("reviews", _reviews),
    ):

        def callback(
            _n: int | None, shown: str | None, build: Callable[[datetime], Any] = build, key: str = key
        ) -> tuple[Any, str, Any]:
            return _refreshed(key, build, shown)

        app.callback(
            Output(f"{key}-body", "children"),
            Output(f"{key}-asof", "children"),
            Output(f"{key}-digest", "data"),
            Input("refresh", "n_intervals"),
            State(f"{key}-digest", "data"),
        )(callback)

    @app.callback(
        Output("security-body", "children"),
        Output("security-asof", "children"),
        Output("security-digest", "data"),
        Input("refresh", "n_intervals"),
        Input("severity-filter", "value"),
        State("security-digest", "data"),
    )
    def security_section(
        _n: int | None, severities: list[str] | None, shown: str | None
    ) -> tuple[Any, str, Any]:
        return _refreshed(
            "security", lambda now: _security(now, [s for s in severities or [] if s in SEVERITIES]), shown
        )

    @app.callback(
        Output("detail", "children"),
        Input({"type": "detail", "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def detail(clicks: list[int | None]) -> Any:
        _session()
        if not ctx.triggered_id or not any(clicks):
            raise PreventUpdate
        transaction_id = str(ctx.triggered_id["index"])
        with _engine().connect() as conn:
            data = queries.decision_detail(conn, transaction_id)
        if data is None:
            return _empty(f"No decision for {transaction_id}.")
        features = sorted(data["features"].items())
        return html.Div(
            [
                html.H2(f"Decision {transaction_id}"),
                html.P(
                    f"{data['decision']} · score {data['score']:.3f} · model {data['model_version']} · "
                    f"{data['time'][:19]} · wallet {data['wallet']} · event {data['event_id']} · "
                    f"price {_fmt(data['price'])}" + (" · degraded" if data["degraded"] else "")
                ),
                html.H3("Reasons"),
                html.Ul([html.Li(str(r)) for r in data["reasons"]] or [html.Li("—")]),
                html.H3("Contributions"),
                _table(
                    data["contributions"],
                    [("feature", "Feature"), ("value", "Value"), ("contribution", "Contribution")],
                    "detail-contributions",
                ),
                html.H3("All features"),
                _table(
                    [{"feature": k, "value": v} for k, v in features],
                    [("feature", "Feature"), ("value", "Value")],
                    "detail-features",
                ),
            ],
            id="detail-view",
        )

    @app.callback(
        Output("case-id", "data"),
        Input({"type": "case", "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def open_case(clicks: list[int | None]) -> str:
        _session()
        if not ctx.triggered_id or not any(clicks):
            raise PreventUpdate
        return str(ctx.triggered_id["index"])

    @app.callback(
        Output("case-body", "children"), Input("case-id", "data"), Input("review-result", "children")
    )
    def case_view(transaction_id: str | None, _shown: Any) -> Any:
        _session()
        return _case_body(transaction_id)

    @app.callback(
        Output("review-result", "children"),
        Input("case-claim", "n_clicks"),
        Input("case-release", "n_clicks"),
        Input("case-decide", "n_clicks"),
        State("case-id", "data"),
        State("case-outcome", "value"),
        State("case-note", "value"),
        prevent_initial_call=True,
    )
    def review_action(
        claims: int,
        releases: int,
        decisions: int,
        transaction_id: str | None,
        outcome: str | None,
        note: str | None,
    ) -> Any:
        session = _session()
        n = (claims or 0) + (releases or 0) + (decisions or 0)
        if not n:
            raise PreventUpdate
        return _review(session, str(ctx.triggered_id), transaction_id, outcome, note, n)

    @app.callback(
        Output("action-kind", "value"),
        Output("action-target", "value"),
        Input({"type": "revert", "index": ALL}, "n_clicks"),
        prevent_initial_call=True,
    )
    def prepare_revert(clicks: list[int | None]) -> tuple[str, str]:
        _session()
        if not ctx.triggered_id or not any(clicks):
            raise PreventUpdate
        return "revert_response", str(ctx.triggered_id["index"])

    @app.callback(
        Output("action-result", "children"),
        Output("action-code", "value"),
        Input("action-apply", "n_clicks"),
        State("action-kind", "value"),
        State("action-target", "value"),
        State("action-reason", "value"),
        State("action-code", "value"),
        prevent_initial_call=True,
    )
    def apply_action(
        n: int | None, kind: str | None, target: str | None, reason: str | None, code: str | None
    ) -> tuple[Any, str]:
        session = _session()
        if not n:
            raise PreventUpdate
        return _apply(session, kind, target, reason, code, n), ""


def _result(text: str, ok: bool, n: int = 0) -> html.P:
    # data-n: which click this answers (a browser test waits for its own answer, not the previous one)
    answered: dict[str, Any] = {"data-n": str(n)}
    return html.P(text, className="ok" if ok else "error", id="action-message", **answered)


def _apply(
    session: Any, kind: str | None, target: str | None, reason: str | None, code: str | None, n: int
) -> Any:
    cfg, user = web.config(), session.user
    ip = flask.g.get("client_ip")
    if kind not in actions.ACTIONS:
        return _result("Choose an action.", False, n)
    if not user.is_admin:
        web.audit_denied(kind, {"role": user.role})
        return _result(f"Refused: {kind} needs the admin role.", False, n)
    now = datetime.now(UTC)
    with cfg.engine.begin() as conn:  # the failure is recorded (committed) even though the action is refused
        try:
            step_up(conn, cfg.settings, user, code or "", ip=ip, now=now, action=kind)
            stepped = True
        except LoginFailed:
            stepped = False
    if not stepped:
        return _result("Refused: the authenticator code is wrong or was used already.", False, n)
    try:
        with cfg.engine.begin() as conn:
            result = actions.perform(
                conn,
                cfg.settings,
                user=user,
                action=kind,
                target=target or "",
                reason=reason or "",
                ip=ip,
                now=now,
            )
            web.security_event(conn, web.ADMIN_ACTION, "low", {"action": kind})
    except actions.ActionDenied as exc:
        return _result(f"Refused: {exc}", False, n)
    except actions.ActionError as exc:
        return _result(f"Not done: {exc}", False, n)
    if result.publish_ip_blocks:
        health.publish_ip_blocks(cfg.settings, cfg.engine)
    return _result(f"Done: {result.message}.", True, n)


def _review(
    session: Any, button: str, transaction_id: str | None, outcome: str | None, note: str | None, n: int
) -> Any:
    """Claim, release or decide the open case. Both roles may (it is the analyst's job); the service refuses
    a case someone else holds or that is decided, and writes label, audit and callback in one transaction."""
    from ticketguard.reviews import service as reviews

    answered: dict[str, Any] = {"data-n": str(n)}
    if not transaction_id:
        return html.P("Open a case first.", className="error", id="review-message", **answered)
    cfg, analyst = web.config(), session.user.username
    ip = flask.g.get("client_ip")
    now = datetime.now(UTC)
    try:
        with cfg.engine.begin() as conn:
            if button == "case-claim":
                claimed = reviews.claim(conn, transaction_id, analyst=analyst, now=now, ip=ip)
                text = f"Claimed {transaction_id} until {claimed.claim_expires_at:%H:%M:%S} UTC."
            elif button == "case-release":
                reviews.release(conn, transaction_id, analyst=analyst, now=now, ip=ip)
                text = f"Released {transaction_id}."
            else:
                decided = reviews.decide(
                    conn,
                    transaction_id,
                    analyst=analyst,
                    outcome=outcome or "",
                    note=note or "",
                    now=now,
                    ip=ip,
                    settings=cfg.settings,
                )
                text = f"Decided {transaction_id}: {decided.outcome}; the label is stored."
    except reviews.ReviewError as exc:
        return html.P(f"Not done: {exc}", className="error", id="review-message", **answered)
    return html.P(text, className="ok", id="review-message", **answered)


CSS = """
body{font-family:system-ui,sans-serif;margin:0;background:#f4f6f8;color:#1d2733}
header{display:flex;gap:1em;align-items:center;background:#1d2733;color:#fff;padding:.6em 1.2em}
header h1{font-size:1.2em;margin:0;flex:1}header form{margin:0}
main{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:1em;padding:1em}
.card-section,.detail{background:#fff;border-radius:8px;padding:1em;box-shadow:0 1px 3px #0002}
.head{display:flex;justify-content:space-between;align-items:baseline}.asof{color:#667;font-size:.85em}
h2{font-size:1.1em;margin:.2em 0}h3{font-size:.95em;margin:.8em 0 .3em}
.kpis{display:grid;grid-template-columns:repeat(4,1fr);gap:.6em}
.kpi{border-radius:6px;padding:.6em;border-left:6px solid #999;background:#fafbfc}
.kpi.ok{border-color:#2e7d32}.kpi.warn{border-color:#c62828;background:#fff4f4}
.kpi .value{font-size:1.5em;font-weight:600}.kpi .change,.kpi .target{font-size:.8em;color:#556}
table.grid{border-collapse:collapse;width:100%;font-size:.85em}
table.grid th,table.grid td{border-bottom:1px solid #e3e6ea;padding:.25em .4em;text-align:left}
table.grid td{overflow-wrap:anywhere}
.empty{color:#667;font-style:italic}.error{color:#b00020}.ok{color:#2e7d32}.note{color:#667;font-size:.85em}
button.link{background:none;border:none;color:#1565c0;cursor:pointer;padding:0;text-decoration:underline}
.detail:empty{display:none}.detail,#section-actions,#section-reviews{grid-column:1/-1}
.case-actions{display:flex;gap:.8em;align-items:center;margin-top:.6em}.case-actions input{flex:1}
.action-form{display:grid;grid-template-columns:2fr 2fr 2fr 1.5fr 1fr;gap:.5em;align-items:center}
"""


def create_app(settings: Settings, engine: Engine) -> dash.Dash:
    server = web.create_server(settings, engine)
    app = dash.Dash(
        "ticketguard.dashboard",
        server=server,  # type: ignore[arg-type]  # Dash accepts a Flask app; its stub says bool
        url_base_pathname="/",
        title="ticketguard console",
        update_title=None,  # type: ignore[arg-type]  # None: no "Updating…" title while refreshing
        suppress_callback_exceptions=True,
        serve_locally=True,
    )
    app.index_string = app.index_string.replace("{%css%}", "{%css%}<style>" + CSS + "</style>")
    app.layout = serve_layout
    _register(app)
    _prepare(app)
    return app


def _prepare(app: dash.Dash) -> None:
    """Do now, once, what Dash does at an app's first request: register the page's scripts and gather the
    callbacks. Dash marks the app prepared *before* it has done so, and under gunicorn's threads the other
    requests of that first moment — a browser asks a new worker for a dozen scripts at once — were refused
    ("the path requested is not valid", a blank console). There is no public call for it in Dash 4; the
    private one is idempotent and its absence fails the console tests loudly (AttributeError). Then the
    page's Content-Security-Policy gets the hashes of the inline scripts Dash now knows of (web.py)."""
    with app.server.test_request_context("/"):
        app._setup_server()  # private: see the docstring
    web.config_of(app.server).csp = web.content_security_policy(app.csp_hashes())
