"""The review round's web pages (``python -m grader review serve ROUND_DIR``), on Flask.

Every page hangs off a private link: ``/r/<token>`` for a reviewer (their tasks, each task's
page, and after the round closes the reviews of their own code) and ``/s/<token>`` for staff
(progress, the gallery, closing the round).  A token is 32 random url-safe characters made by
:mod:`secrets`; an unknown token, and a task or page that is not the token owner's, is a 404
that says nothing more.  Nothing here runs student code: the code is shown as text,
highlighted by Pygments (which escapes it), and Jinja autoescapes everything else from a
submission.  There is no JavaScript: forms post and redirect back (post/redirect/get), so a
reload never sends a review twice and the pages work in any browser.

Reviewers never see an id or a name: a reviewer sees "Solution 1..k", an author sees
"Reviewer 1..k" (and "Staff reviewer").  The reviews of a student's code stay hidden from
them until staff close the round (Caesar's reveal date).
"""

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, abort, flash, redirect, render_template, request, url_for
from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import PythonLexer
from werkzeug.wrappers import Response

from grader.review import form, gallery, rounds
from grader.review.plan import STAFF
from grader.review.store import Person, Store, Task

#: The helpfulness scale an author rates a review on.
HELPFUL = ((2, "very helpful"), (1, "helpful"), (0, "neutral"), (-1, "not helpful"), (-2, "harmful or rude"))
#: Response headers of every page: no framing, no caching, no token in a Referer.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}
MAX_COMMENT_CHARS = 4000
MAX_SUMMARY_CHARS = 20000


def code_html(code: str, marked: set[int] | None = None) -> Markup:
    """``code`` highlighted as Python with line numbers, lines ``marked`` shaded; escaped by Pygments."""
    formatter = HtmlFormatter(linenos="table", lineanchors="L", anchorlinenos=True, hl_lines=sorted(marked or ()))
    return Markup(highlight(code or "# (no code for this unit)\n", PythonLexer(), formatter))


def create_app(folder: str | os.PathLike[str], base_url: str = "") -> Flask:
    """The Flask app of the round in ``folder``; opens (on the first start, creates) its database."""
    store, _ = rounds.open_store(folder, base_url)
    rubric = rounds.load_rubric(folder)
    app = Flask(__name__)
    app.secret_key = os.urandom(32)  # flash messages only; nothing is trusted from the cookie
    app.config.update(SESSION_COOKIE_SAMESITE="Strict", SESSION_COOKIE_HTTPONLY=True, MAX_CONTENT_LENGTH=256 * 1024)
    app.extensions["review_store"] = store
    app.jinja_env.globals.update(
        pygments_css=Markup(HtmlFormatter().get_style_defs(".highlight")),
        round_id=store.round_id,
        unit=store.unit,
    )

    def person_or_404(token: str) -> Person:
        person = store.person_by_token(token)
        if person is None:
            abort(404)
        return person

    def staff_or_404(token: str) -> Person:
        person = person_or_404(token)
        if person.role != STAFF:
            abort(404)
        return person

    def task_or_404(person: Person, number: int) -> Task:
        task = store.task(person.id, number)
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

    @app.after_request
    def headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    @app.errorhandler(404)
    def not_found(_: Exception) -> tuple[str, int]:
        return render_template("message.html", title="Not found", text="There is no page here."), 404

    @app.get("/r/<token>")
    def home(token: str) -> str:
        person = person_or_404(token)
        tasks = [(task, store.solution(task.author), state_of(task)) for task in store.tasks_of(person.id)]
        received = store.tasks_for_author(person.id)
        return render_template(
            "home.html", person=person, token=token, tasks=tasks, closed=store.closed(), received=len(received)
        )

    @app.route("/r/<token>/task/<int:number>", methods=["GET", "POST"])
    def task_page(token: str, number: int) -> str | Response:
        person = person_or_404(token)
        task = task_or_404(person, number)
        if request.method == "POST":
            if store.closed():
                flash("The round is closed: reviews can no longer change.", "error")
            else:
                _post_task(store, rubric, task, request.form)
            return redirect(url_for("task_page", token=token, number=number))
        solution = store.solution(task.author)
        comments = store.comments(task.id)
        latest = store.latest(task.id)
        marked = {line for c in comments for line in range(c.start, c.end + 1)}
        return render_template(
            "task.html",
            person=person,
            token=token,
            task=task,
            solution=solution,
            code=code_html(solution.code if solution else "", marked),
            lines=len((solution.code if solution else "").splitlines()) or 1,
            comments=comments,
            latest=latest,
            submitted=store.submitted(task.id),
            state=state_of(task),
            rubric=rubric,
            closed=store.closed(),
        )

    @app.route("/r/<token>/mine", methods=["GET", "POST"])
    def mine(token: str) -> str | Response:
        person = person_or_404(token)
        if not store.closed():
            return render_template(
                "message.html",
                title="Reviews of your code",
                text="The reviews of your code appear here when staff close the review round.",
                back=url_for("home", token=token),
            )
        tasks = store.tasks_for_author(person.id)
        if request.method == "POST":
            ids = {task.id for task in tasks}
            try:
                task_id, rating = int(request.form["task"]), int(request.form["helpful"])
                if task_id not in ids or store.submitted(task_id) is None:
                    abort(404)
                store.rate(task_id, rating)
                flash("Thank you: your rating is saved.", "ok")
            except (KeyError, ValueError):
                flash("Choose one of the ratings before saving.", "error")
            return redirect(url_for("mine", token=token))
        solution = store.solution(person.id)
        reviews, numbers = [], {STAFF: 0, "student": 0}
        for task in tasks:
            version = store.submitted(task.id)
            if version is None:
                continue
            numbers[task.role] = numbers.get(task.role, 0) + 1
            label = f"{'Staff reviewer' if task.role == STAFF else 'Reviewer'} {numbers[task.role]}"
            comments = store.comments(task.id)
            marked = {line for c in comments for line in range(c.start, c.end + 1)}
            reviews.append(
                {
                    "task": task,
                    "label": label,
                    "version": version,
                    "comments": comments,
                    "code": code_html(solution.code if solution else "", marked),
                    "rating": store.rating(task.id),
                }
            )
        return render_template("mine.html", person=person, token=token, reviews=reviews, rubric=rubric, helpful=HELPFUL)

    @app.get("/s/<token>")
    def staff(token: str) -> str:
        staff_or_404(token)
        progress = store.progress()
        solutions = [store.solution(p.id) for p in store.people() if p.role != STAFF]
        cards = gallery.gallery(store.unit, [_gallery_solution(s) for s in solutions if s is not None])
        own = store.tasks_of(staff_or_404(token).id)
        return render_template(
            "staff.html",
            token=token,
            progress=progress,
            cards=[(card, code_html(card.representative)) for card in cards],
            closed=store.closed(),
            own=own,
            aliases={p.id: p.alias for p in store.people()},
        )

    @app.post("/s/<token>/close")
    def close(token: str) -> Response:
        staff_or_404(token)
        store.close_round()
        flash("The round is closed: authors now see the reviews of their code.", "ok")
        return redirect(url_for("staff", token=token))

    return app


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


def _post_task(store: Store, rubric: form.Rubric, task: Task, data: Mapping[str, str]) -> None:
    """Apply one form post of a task page: add or delete a comment, save a draft or submit."""
    action = data.get("action", "")
    if action == "comment":
        try:
            start, end = int(data.get("start", "")), int(data.get("end") or data.get("start", ""))
            store.add_comment(task.id, start, end, data.get("text", "")[:MAX_COMMENT_CHARS])
            flash(f"Comment on line{'s' if end > start else ''} {start}{f'-{end}' if end > start else ''} saved.", "ok")
        except ValueError:
            flash("A comment needs a first line (1 or more), a last line not before it, and some text.", "error")
        return
    if action == "delete":
        if store.delete_comment(task.id, int(data.get("comment", "0") or 0)):
            flash("Comment deleted.", "ok")
        return
    if action not in ("draft", "submit"):
        flash("Unknown action.", "error")
        return
    scores: dict[str, int] = {}
    for item in rubric.items:
        value = data.get(f"item-{item.id}", "")
        if value.isdigit() and int(value) < len(item.levels):
            scores[item.id] = int(value)
    summary = data.get("summary", "")[:MAX_SUMMARY_CHARS]
    if action == "submit":
        missing = [item.id for item in rubric.items if item.id not in scores]
        if missing:
            store.save_review(task.id, scores, summary, submit=False)
            flash(f"Saved as a draft: choose a level for {', '.join(missing)} before submitting.", "error")
            return
    store.save_review(task.id, scores, summary, submit=action == "submit")
    flash(
        "Review submitted. You can still change it until the round closes." if action == "submit" else "Draft saved.",
        "ok",
    )


def serve(folder: str | os.PathLike[str], host: str = "127.0.0.1", port: int = 8000, base_url: str = "") -> None:
    """Run the round's web app (Werkzeug's threaded server) until interrupted."""
    base = base_url or f"http://{host}:{port}"
    app = create_app(folder, base)
    print(f"review round {app.jinja_env.globals['round_id']} at {base}; links: {Path(folder) / rounds.LINKS_FILE}")
    app.run(host=host, port=port, threaded=True, use_reloader=False)
