"""The review round's web pages (``python -m grader review serve ROUND_DIR``), on Flask.

Every page hangs off a private link: ``/r/<token>`` for a reviewer (their tasks, each task's
page, and after the round closes the reviews of their own code) and ``/s/<token>`` for staff
(progress, every review, reassigning, the gallery; the round's owner also closes, reopens and
sets the deadline).  A token is 32 random url-safe characters made by :mod:`secrets`; an
unknown token, an id that is not the token owner's, and any malformed id are a 404 that says
nothing more.  Nothing here runs student code: the code is shown as text, highlighted by
Pygments (which escapes it), and Jinja autoescapes everything else from a submission.

**Anonymous both ways.**  Reviewers see "Solution 1..k", authors see "Reviewer 1..k" (in a
random but fixed order) and "Staff reviewer"; no page or form carries a database id: tasks
and comments have random public ids (:mod:`~grader.review.store`).

**One record.**  A task page is one form: the line comments (added beside their lines, a click
on a line number starts one), the rubric and the summary are posted together, so adding or
deleting a comment saves everything typed as a draft, and a refused post shows the page again
with what was typed.  The author reads the last *submitted* version, comments included.

**Served like an app.**  :func:`serve` runs the app under waitress (threads, no access log, so
no token in a log); every form carries a CSRF token (Flask-WTF), the session cookie is
``SameSite=Strict`` and a post that a browser marks cross-site is refused.  The only script is
``static/review.js`` (``script-src 'self'``); the pages work without it.
"""

import functools
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, url_for
from flask_wtf.csrf import CSRFError, CSRFProtect
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from werkzeug.wrappers import Response

from grader.review import form, gallery, rounds
from grader.review.plan import STAFF
from grader.review.store import FLAG, HIDE, SHOW, Comment, Person, ReviewVersion, Store, Task

#: The helpfulness scale an author rates a review on.
HELPFUL = ((2, "very helpful"), (1, "helpful"), (0, "neutral"), (-1, "not helpful"), (-2, "harmful or rude"))
#: Response headers of every page: no framing, no caching, no token in a Referer, our script only.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; script-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_COMMENT_CHARS = 4000
MAX_SUMMARY_CHARS = 20000
MAX_NOTE_CHARS = 2000
#: A task number or line number: a few digits (anything longer is no number of ours).
_SMALL_NUMBER = re.compile(r"[1-9][0-9]{0,6}")
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{6,64}")
_TOKEN_IN_PATH = re.compile(r"^/([rs])/[^/]+")


@dataclass
class Typed:
    """What a reviewer typed into a task page: shown again when a post is refused."""

    scores: dict[str, int] = field(default_factory=dict)
    summary: str = ""
    start: str = ""
    end: str = ""
    text: str = ""


@functools.lru_cache(maxsize=1024)
def _highlighted(source: str) -> tuple[str, ...]:
    """``source`` highlighted by Pygments, one HTML string per line (each closes its own
    spans); cached, since every page view of a solution shows the same code."""
    lexer = PythonLexer(stripnl=False, ensurenl=True)  # keep leading blank lines: line numbers must match
    return tuple(highlight(source, lexer, HtmlFormatter(nowrap=True)).split("\n"))


def code_rows(code: str, comments: list[Comment]) -> list[dict[str, Any]]:
    """The code as table rows: line number, the line highlighted by Pygments (escaped), whether
    a comment covers it, and the comments that start on it.  Ranges are clipped to the code."""
    source = code or "# (no code for this unit)\n"
    html_lines = _highlighted(source)
    count = len(source.splitlines()) or 1
    marked: set[int] = set()
    starting: dict[int, list[Comment]] = {}
    for comment in comments:
        start, end = max(1, comment.start), min(comment.end, count)
        if start > count:
            continue
        marked.update(range(start, end + 1))
        starting.setdefault(start, []).append(comment)
    return [
        {
            "n": n,
            "html": Markup(html_lines[n - 1] if n - 1 < len(html_lines) else ""),
            "marked": n in marked,
            "comments": starting.get(n, []),
        }
        for n in range(1, count + 1)
    ]


def create_app(folder: str | os.PathLike[str], base_url: str = "") -> Flask:
    """The Flask app of the round in ``folder``; opens (on the first start, creates) its database.

    Raises :class:`~grader.review.rounds.RoundError` when the round's rubric changed after
    the round started (see :func:`~grader.review.rounds.check_rubric`)."""
    store, _ = rounds.open_store(folder, base_url)
    try:
        rubric = rounds.check_rubric(folder, store)
    except Exception:
        store.close()
        raise
    app = Flask(__name__)
    app.secret_key = store.meta("secret") or os.urandom(32)  # kept in review.db: a restart keeps forms valid
    app.config.update(
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=base_url.startswith("https://"),
        MAX_CONTENT_LENGTH=256 * 1024,
        WTF_CSRF_TIME_LIMIT=None,  # a review may take hours to write; the token lives as long as the tab
        WTF_CSRF_SSL_STRICT=False,  # it wants a Referer, which no-referrer withholds; Sec-Fetch-Site is checked instead
    )
    app.extensions["review_store"] = store
    app.jinja_env.globals.update(
        pygments_css=Markup(HtmlFormatter().get_style_defs(".highlight")),
        round_id=store.round_id,
        unit=store.unit,
        max_comment=MAX_COMMENT_CHARS,
        max_summary=MAX_SUMMARY_CHARS,
    )

    def person_or_404(token: str) -> Person:
        person = store.person_by_token(token) if len(token) <= 64 else None
        if person is None:
            abort(404)
        return person

    def staff_or_404(token: str) -> Person:
        person = person_or_404(token)
        if person.role != STAFF:
            abort(404)
        return person

    def owner_or_404(token: str) -> Person:
        person = staff_or_404(token)
        if person.id != store.meta("owner"):
            abort(404)
        return person

    def task_or_404(person: Person, number: str) -> Task:
        task = store.task(person.id, int(number)) if _SMALL_NUMBER.fullmatch(number) else None
        if task is None:
            abort(404)
        return task

    def public_task_or_404(public: str) -> Task:
        task = store.task_by_public(public) if _PUBLIC_ID.fullmatch(public) else None
        if task is None:
            abort(404)
        return task

    def state_of(task: Task) -> str:
        latest = store.latest(task.id)
        if latest is None:
            return "not started"
        if store.submitted(task.id) is not None:
            return "submitted" if latest.state == "submitted" else "submitted, newer draft"
        return "draft"

    def round_state() -> dict[str, Any]:
        deadline = store.deadline()
        return {"closed": store.closed(), "deadline": deadline.isoformat(sep=" ") if deadline else ""}

    @app.before_request
    def same_site_posts_only() -> None:
        # a browser says where a request comes from; a post from another site is refused
        # before the CSRF check (which would refuse it too)
        if request.method == "POST" and request.headers.get("Sec-Fetch-Site", "same-origin") not in (
            "same-origin",
            "none",
        ):
            abort(403)

    CSRFProtect(app)  # after the check above, which names the cause of a cross-site post

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    def message(title: str, text: str, status: int) -> tuple[str, int]:
        return render_template("message.html", title=title, text=text, **round_state()), status

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[str, int]:
        return message("Not found", "There is no page here.", 404)

    @app.errorhandler(403)
    def forbidden(_: Exception) -> tuple[str, int]:
        return message("Refused", "This form was sent from another site; open your own link and send it there.", 403)

    @app.errorhandler(CSRFError)
    def csrf_refused(_: CSRFError) -> tuple[str, int]:
        return message(
            "Refused",
            "This form is not from this review page (or the page is older than the server's last start): "
            "go back, reload the page and send it again. Copy what you typed first.",
            400,
        )

    @app.errorhandler(405)
    def not_allowed(_: Exception) -> tuple[str, int]:
        return message("Not allowed", "This page cannot be used that way.", 405)

    @app.errorhandler(413)
    def too_large(_: Exception) -> tuple[str, int]:
        return message("Too long", "What you sent is too long: shorten the comment or summary and send it again.", 413)

    @app.errorhandler(500)
    def server_error(_: Exception) -> tuple[str, int]:
        return message("Error", "Something went wrong on the server; staff can see it in the server's output.", 500)

    @app.get("/r/<token>")
    def home(token: str) -> str:
        person = person_or_404(token)
        tasks = [(task, store.solution(task.author), state_of(task)) for task in store.tasks_of(person.id)]
        received = [t for t in store.tasks_for_author(person.id) if not store.hidden(t.id)]
        return render_template(
            "home.html",
            person=person,
            token=token,
            tasks=tasks,
            received=len(received),
            withdrawn=len(store.withdrawn_of(person.id)),
            **round_state(),
        )

    @app.route("/r/<token>/task/<number>", methods=["GET", "POST"])
    def task_page(token: str, number: str) -> str | Response | tuple[str, int]:
        person = person_or_404(token)
        task = task_or_404(person, number)
        solution = store.solution(task.author)
        lines = len((solution.code if solution else "").splitlines()) or 1
        typed, error = None, ""
        if request.method == "POST":
            if store.closed():
                flash("The round is closed: reviews can no longer change.", "error")
                return redirect(url_for("task_page", token=token, number=number))
            typed, error = _post_task(store, rubric, task, request.form, lines)
            if not error:
                return redirect(url_for("task_page", token=token, number=number) + request.form.get("anchor", ""))
        comments = store.comments(task.id)
        latest = store.latest(task.id)
        if typed is None:
            typed = Typed(dict(latest.scores), latest.summary) if latest else Typed()
        page = render_template(
            "task.html",
            person=person,
            token=token,
            task=task,
            solution=solution,
            rows=code_rows(solution.code if solution else "", comments),
            lines=lines,
            comments=comments,
            typed=typed,
            error=error,
            submitted=store.submitted(task.id),
            state=state_of(task),
            rubric=rubric,
            **round_state(),
        )
        return (page, 422) if error else page

    @app.route("/r/<token>/mine", methods=["GET", "POST"])
    def mine(token: str) -> str | Response | tuple[str, int]:
        person = person_or_404(token)
        if not store.closed():
            return render_template(
                "message.html",
                title="Reviews of your code",
                text="The reviews of your code appear here when the review round closes.",
                back=url_for("home", token=token),
                **round_state(),
            )
        tasks = [t for t in store.tasks_for_author(person.id) if not store.hidden(t.id)]
        if request.method == "POST":
            chosen = next((t for t in tasks if t.public == request.form.get("review", "")), None)
            if chosen is None or store.submitted(chosen.id) is None:
                abort(404)
            rating = request.form.get("helpful", "")
            if rating.lstrip("-").isdigit() and len(rating) <= 2 and int(rating) in dict(HELPFUL):
                store.rate(chosen.id, int(rating))
                flash("Thank you: your rating is saved.", "ok")
            else:
                flash("Choose one of the ratings before saving.", "error")
            return redirect(url_for("mine", token=token) + f"#review-{chosen.public}")
        solution = store.solution(person.id)
        reviews, numbers = [], {STAFF: 0, "student": 0}
        for task in tasks:
            version = store.submitted(task.id)
            if version is None:
                continue
            numbers[task.role] = numbers.get(task.role, 0) + 1
            label = f"{'Staff reviewer' if task.role == STAFF else 'Reviewer'} {numbers[task.role]}"
            reviews.append(_shown(task, label, version, solution.code if solution else "", store.rating(task.id)))
        return render_template(
            "mine.html", person=person, token=token, reviews=reviews, rubric=rubric, helpful=HELPFUL, **round_state()
        )

    @app.get("/s/<token>")
    def staff(token: str) -> str:
        person = staff_or_404(token)
        people = store.people()
        aliases = {p.id: p.alias for p in people}
        solutions = [store.solution(p.id) for p in people if p.role != STAFF]
        cards = gallery.gallery(store.unit, [_gallery_solution(s) for s in solutions if s is not None])
        reviews = []
        for task in store.all_tasks():
            marks = store.moderation(task.id)
            reviews.append(
                {
                    "task": task,
                    "state": state_of(task),
                    "hidden": store.hidden(task.id),
                    "flagged": any(m.action == FLAG for m in marks),
                    "open": store.submitted(task.id) is None,
                }
            )
        return render_template(
            "staff.html",
            token=token,
            person=person,
            owner=person.id == store.meta("owner"),
            progress=store.progress(),
            reviews=reviews,
            cards=[
                (card, [aliases.get(a, "?") for a in card.authors], code_rows(card.representative, []))
                for card in cards
            ],
            own=store.tasks_of(person.id),
            volunteers=_volunteers(store, people),
            aliases=aliases,
            events=store.events(),
            **round_state(),
        )

    @app.route("/s/<token>/review/<public>", methods=["GET", "POST"])
    def staff_review(token: str, public: str) -> str | Response:
        person = staff_or_404(token)
        task = public_task_or_404(public)
        if request.method == "POST":
            action = request.form.get("action", "")
            note = request.form.get("note", "")
            if action not in (HIDE, SHOW, FLAG) or len(note) > MAX_NOTE_CHARS:
                flash(f"Choose hide, show or flag; a note has at most {MAX_NOTE_CHARS} characters.", "error")
            else:
                store.moderate(task.id, action, note, person.id)
                flash(
                    {HIDE: "Hidden from the author and the consensus.", SHOW: "Shown again.", FLAG: "Flagged."}[action],
                    "ok",
                )
            return redirect(url_for("staff_review", token=token, public=public))
        solution = store.solution(task.author)
        submitted, latest = store.submitted(task.id), store.latest(task.id)
        shown = (
            _shown(task, "Submitted review", submitted, solution.code if solution else "", store.rating(task.id))
            if submitted
            else None
        )
        return render_template(
            "staff_review.html",
            token=token,
            task=task,
            aliases={p.id: p.alias for p in store.people()},
            shown=shown,
            latest=latest,
            versions=len(store.history(task.id)),
            moderation=store.moderation(task.id),
            hidden=store.hidden(task.id),
            rubric=rubric,
            helpful=dict(HELPFUL),
            max_note=MAX_NOTE_CHARS,
            **round_state(),
        )

    @app.post("/s/<token>/reassign")
    def reassign(token: str) -> Response:
        person = staff_or_404(token)
        task = public_task_or_404(request.form.get("review", ""))
        if task.withdrawn or store.closed():
            flash("This review cannot be reassigned (already reassigned, or the round is closed).", "error")
            return redirect(url_for("staff", token=token))
        try:
            new = store.reassign(task, request.form.get("to", ""), person.id)
            flash(f"Reassigned: {new.reviewer} now reviews it as their solution {new.number}.", "ok")
        except ValueError as exc:
            flash(f"Not reassigned: {exc}.", "error")
        return redirect(url_for("staff", token=token) + "#reviews")

    @app.post("/s/<token>/round")
    def round_action(token: str) -> Response:
        person = owner_or_404(token)
        action = request.form.get("action", "")
        try:
            if action == "close":
                if request.form.get("confirm") != "yes":
                    raise ValueError("tick the box to confirm: closing shows every author their reviews")
                store.close_round(person.id)
                flash("The round is closed: authors now see the reviews of their code.", "ok")
            elif action == "reopen":
                store.reopen(parse_deadline(request.form.get("deadline", "")), person.id)
                flash("The round is open again.", "ok")
            elif action == "deadline":
                store.set_deadline(parse_deadline(request.form.get("deadline", "")), person.id)
                flash("Deadline saved.", "ok")
            else:
                abort(404)
        except ValueError as exc:
            flash(f"Nothing changed: {exc}.", "error")
        return redirect(url_for("staff", token=token))

    def log_exception(exc_info: Any) -> None:
        # Flask's default names the URL, which holds the token: name the route instead
        path = _TOKEN_IN_PATH.sub(r"/\1/<token>", request.path)
        app.logger.error("Exception on %s [%s]", path, request.method, exc_info=exc_info)

    app.log_exception = log_exception  # type: ignore[method-assign]
    return app


def _volunteers(store: Store, people: list[Person]) -> list[tuple[Person, int]]:
    """Who could take reviews over, with how many reviews each has left to write: staff first,
    then students by how few they have left (one list for the page; the store refuses the
    author, the same reviewer and anyone already reviewing that author)."""
    left = {p.id: sum(store.submitted(t.id) is None for t in store.tasks_of(p.id)) for p in people}
    return sorted(((p, left[p.id]) for p in people), key=lambda pair: (pair[0].role != STAFF, pair[1], pair[0].id))


def parse_deadline(text: str) -> datetime | None:
    """A deadline from a form or ``serve --deadline``: ISO date and time (``2026-12-10T23:59``, optional ``+09:00``),
    in the server's time zone when no offset is given; ``""`` means none."""
    text = text.strip()
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not a date and time like 2026-12-10T23:59") from None
    return (moment if moment.tzinfo else moment.astimezone()).astimezone(UTC)


def _shown(task: Task, label: str, version: ReviewVersion, code: str, rating: int | None) -> dict[str, Any]:
    """One submitted review as an author (or staff) reads it."""
    return {
        "task": task,
        "label": label,
        "version": version,
        "comments": version.comments,
        "rows": code_rows(code, list(version.comments)) if version.comments else [],
        "rating": rating,
    }


def _gallery_solution(solution: Any) -> gallery.Solution:
    """A stored solution as the gallery's input: status, score and failures from its evidence."""
    exercises = solution.evidence.get("exercises", [])
    return gallery.Solution(
        author=solution.author,
        code=solution.code,
        status=solution.status,
        score=round_score(sum(e.get("score", 0) for e in exercises)),
        max_score=round_score(sum(e.get("max_score", 0) for e in exercises)),
        failed=tuple(sorted({f["property"] for e in exercises for f in e.get("failures", [])})),
        mistake="; ".join(sorted({e["mistake"] for e in exercises if e.get("mistake")})),
    )


def round_score(value: float) -> float:
    """A score to two decimals, as the grader reports it."""
    return float(f"{value:.2f}")


def _typed(rubric: form.Rubric, data: Mapping[str, str]) -> Typed:
    """The fields of a task form, levels checked against the rubric."""
    scores: dict[str, int] = {}
    for item in rubric.items:
        value = data.get(f"item-{item.id}", "")
        if value.isdigit() and len(value) <= 3 and int(value) < len(item.levels):
            scores[item.id] = int(value)
    return Typed(
        scores,
        data.get("summary", "").replace("\r\n", "\n"),
        data.get("start", "").strip(),
        data.get("end", "").strip(),
        data.get("text", "").replace("\r\n", "\n"),
    )


def _post_task(store: Store, rubric: form.Rubric, task: Task, data: Mapping[str, str], lines: int) -> tuple[Typed, str]:
    """Apply one post of a task page; returns what was typed and an error ("" when done).

    Every action saves the rubric and summary with it (a draft, or the submission), so adding
    or deleting a comment never loses them; a refused post changes nothing and the page is
    shown again with what was typed."""
    typed = _typed(rubric, data)
    action = data.get("action", "")
    if len(typed.summary) > MAX_SUMMARY_CHARS:
        return typed, f"The summary has {len(typed.summary)} characters; the limit is {MAX_SUMMARY_CHARS}: shorten it."
    if action == "comment":
        start, end = typed.start, typed.end or typed.start
        if not (_SMALL_NUMBER.fullmatch(start) and _SMALL_NUMBER.fullmatch(end)):
            return typed, f"A comment needs a first line and a last line between 1 and {lines}."
        first, last = int(start), int(end)
        if not 1 <= first <= last <= lines:
            return (
                typed,
                f"Lines {first}-{last} are not in the code: choose lines between 1 and {lines}, first <= last.",
            )
        if not typed.text.strip():
            return typed, "Write the comment before adding it."
        if len(typed.text) > MAX_COMMENT_CHARS:
            return typed, f"The comment has {len(typed.text)} characters; the limit is {MAX_COMMENT_CHARS}: shorten it."
        store.add_comment(task.id, first, last, typed.text, lines)
        store.save_review(task.id, typed.scores, typed.summary, submit=False)
        flash(f"Comment on line{'s' if last > first else ''} {first}{f'-{last}' if last > first else ''} saved.", "ok")
        return typed, ""
    if action.startswith("delete:"):
        if store.delete_comment(task.id, action.removeprefix("delete:")):
            flash("Comment deleted.", "ok")
        store.save_review(task.id, typed.scores, typed.summary, submit=False)
        return typed, ""
    if action not in ("draft", "submit"):
        return typed, "Unknown action: use the buttons of the page."
    if action == "submit":
        missing = [item.id for item in rubric.items if item.id not in typed.scores]
        if missing:
            store.save_review(task.id, typed.scores, typed.summary, submit=False)
            flash(f"Saved as a draft: choose a level for {', '.join(missing)} before submitting.", "error")
            return typed, ""
    store.save_review(task.id, typed.scores, typed.summary, submit=action == "submit")
    flash(
        "Review submitted: your comments, levels and summary. You can still change it until the round closes."
        if action == "submit"
        else "Draft saved.",
        "ok",
    )
    return typed, ""


def serve(
    folder: str | os.PathLike[str],
    host: str = "127.0.0.1",
    port: int = 8000,
    base_url: str = "",
    *,
    threads: int = 8,
    trusted_proxy: str = "",
    deadline: datetime | None = None,
    connections: int = 0,
) -> None:
    """Run the round's web app under waitress until interrupted.

    ``base_url`` is the address students open (an HTTPS reverse proxy's, see the README);
    ``trusted_proxy`` the proxy's address, whose ``X-Forwarded-*`` headers waitress then
    believes; ``deadline`` sets when the round closes by itself; ``connections`` caps the
    connections open at once (default 4 per thread)."""
    from waitress import serve as waitress_serve  # type: ignore[import-untyped]

    base = base_url or f"http://{host}:{port}"
    app = create_app(folder, base)
    store: Store = app.extensions["review_store"]
    if deadline is not None:
        try:
            store.set_deadline(deadline, "serve --deadline")
        except ValueError as exc:
            store.close()
            raise rounds.RoundError(f"--deadline: {exc}") from None
    state = store.deadline()
    print(
        f"review round {store.round_id} at {base}; links: {Path(folder) / rounds.LINKS_FILE}"
        + (f"; closes by itself at {state.isoformat(sep=' ')}" if state else "; no deadline (staff close it)"),
        file=sys.stderr,
    )
    # Few open connections: waitress's event loop visits every open connection on every event,
    # so 300 connections at once cost it several times the work of 32 (BENCHMARKS.md, issue 34);
    # the rest wait in the kernel's queue.  An idle keep-alive connection of a browser gives its
    # place up after 10 to 15 s (behind a proxy, each request has its own connection anyway).
    options: dict[str, Any] = {
        "host": host,
        "port": port,
        "threads": threads,
        "connection_limit": connections or 4 * threads,
        "channel_timeout": 10,
        "cleanup_interval": 5,
        "ident": "review",
    }
    if trusted_proxy:
        options |= {
            "trusted_proxy": trusted_proxy,
            "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"},
            "clear_untrusted_proxy_headers": True,
        }
    waitress_serve(app, **options)
