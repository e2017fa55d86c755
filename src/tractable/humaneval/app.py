r"""The web application of a human evaluation (Starlette, served by uvicorn).

Pages are server-rendered: ``GET /rate`` shows the session's next item, its buttons post to
``POST /answer`` with the session's CSRF token and the item's number, the answer is committed
and the browser is redirected to the next item. Images are fetched by per-session random tokens
(``/img/TOKEN``) that carry no hint of their source. A small script adds keyboard shortcuts.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from . import storage

COOKIE = "tractable_rater"
HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}

CSS = """
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2430}
main{max-width:760px;margin:0 auto;padding:24px}
h1{font-size:20px;margin:0 0 4px}
.card{
  background:#fff;border-radius:12px;box-shadow:0 1px 4px #0002;padding:24px;
  margin-top:16px;text-align:center}
progress{width:100%;height:8px;accent-color:#3b6fd8}
.meta{display:flex;justify-content:space-between;color:#5b6475;font-size:14px;margin:8px 0}
.q{font-size:18px;margin:0 0 16px}
.imgs{display:flex;gap:24px;justify-content:center;flex-wrap:wrap}
img.s{
  width:224px;height:224px;image-rendering:pixelated;border:1px solid #ccd;
  border-radius:6px;background:#000}
form{margin:0}
.row{display:flex;gap:16px;justify-content:center;margin-top:20px}
button{
  font:inherit;padding:10px 22px;border-radius:8px;border:1px solid #3b6fd8;
  background:#fff;color:#3b6fd8;cursor:pointer}
button:hover,button:focus{background:#3b6fd8;color:#fff}
button.pick{padding:8px;border-color:#ccd;background:#fff}
button.pick:hover,button.pick:focus{border-color:#3b6fd8;background:#eef3ff}
kbd{
  border:1px solid #aab;border-bottom-width:2px;border-radius:4px;padding:0 5px;
  font-size:13px;color:#1d2430;background:#fafafa}
.note{color:#5b6475;font-size:13px;margin-top:20px}
.err{color:#a11}
input{font:inherit;padding:8px;border:1px solid #ccd;border-radius:6px}
"""

JS = """
document.addEventListener('keydown', function (e) {
  if (e.target.tagName === 'INPUT' || e.metaKey || e.ctrlKey || e.altKey) return;
  var b = document.querySelector('button[data-keys~="' + e.key.toLowerCase() + '"]');
  if (b) { e.preventDefault(); b.click(); }
});
document.addEventListener('submit', function (e) {
  if (e.target.dataset.sent) { e.preventDefault(); return; }
  e.target.dataset.sent = '1';
});
"""


def _page(body: str, status: int = 200, title: str = "Human evaluation") -> HTMLResponse:
    page = (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{html.escape(title)}"
        "</title><meta name=viewport content='width=device-width,initial-scale=1'>"
        "<link rel=stylesheet href=/app.css><script src=/app.js defer></script></head>"
        f"<body><main><h1>Which digits are real?</h1>{body}</main></body></html>"
    )
    return HTMLResponse(page, status_code=status, headers=HEADERS)


def _error(status: int, message: str) -> HTMLResponse:
    body = (
        f"<div class=card><p class='err' id=error>{html.escape(message)}</p>"
        "<p><a href=/rate>Go to your next item</a> · <a href=/>first page</a></p></div>"
    )
    return _page(body, status, "Refused")


def _same_origin(request: Request) -> bool:
    # A cross-site form post carries a foreign Origin; refuse it before looking at the token.
    origin = request.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == request.headers.get("host")


def _item_body(state: dict[str, Any], session: str) -> str:
    item, done, total = state["item"], state["answered"], state["total"]
    bar = (f"<div class=meta><span id=progress>Item {done + 1} of {total}</span>"
           f"<span>{done} answered</span></div>"
           f"<progress id=bar max={total} value={done}></progress>")  # fmt: skip
    hidden = (f"<input type=hidden name=csrf value='{html.escape(state['csrf'])}'>"
              f"<input type=hidden name=item value='{item['pos']}'>")  # fmt: skip
    src = [f"/img/{html.escape(t)}" for t in item["tokens"]]
    if item["task"] == "turing":
        body = (
            "<p class=q>Is this a <b>real</b> handwritten digit, or one <b>generated</b> by a "
            f"model?</p><div class=imgs><img class=s id=image src='{src[0]}' alt='digit'></div>"
            f"<form method=post action=/answer>{hidden}<div class=row>"
            "<button id=choice-real name=choice value=real data-keys='r'>Real <kbd>R</kbd></button>"
            "<button id=choice-generated name=choice value=generated data-keys='g'>Generated "
            "<kbd>G</kbd></button></div></form>"
        )
    else:
        body = (
            "<p class=q>Which of the two looks <b>more like a real</b> handwritten digit?</p>"
            f"<form method=post action=/answer>{hidden}<div class=imgs>"
            "<button class=pick id=choice-left name=choice value=left data-keys='a arrowleft'>"
            f"<img class=s src='{src[0]}' alt='left digit'><br><kbd>←</kbd> or <kbd>A</kbd>"
            "</button><button class=pick id=choice-right name=choice value=right "
            f"data-keys='l arrowright'><img class=s src='{src[1]}' alt='right digit'><br>"
            "<kbd>→</kbd> or <kbd>L</kbd></button></div></form>"
        )
    note = (
        "<p class=note>Your answers are saved as you go: close this page at any time and come "
        f"back with <a href='/resume/{html.escape(session)}'>your resume link</a>.</p>"
    )
    return f"{bar}<div class=card>{body}{note}</div>"


def make_app(db: str | Path) -> Starlette:
    r"""The Starlette application serving the evaluation stored in ``db``."""
    storage.settings(db)  # fail now, not on the first request, when db holds no evaluation

    async def index(request: Request) -> Response:
        session = request.cookies.get(COOKIE)
        resume = ""
        if session:
            try:
                state = await run_in_threadpool(storage.progress, db, session)
                resume = (f"<p><a id=continue href=/rate>Continue where you stopped</a> "
                          f"({state['answered']} of {state['total']} answered)</p>")  # fmt: skip
            except storage.RefusedError:
                pass
        body = (
            "<div class=card><p>You will see handwritten digits, some written by people and "
            "some generated by models. In part 1 say whether one digit is <b>real</b> or "
            "<b>generated</b>; in part 2 pick which of two digits looks <b>more like a real "
            "one</b>. Go with your first impression; each answer takes a few seconds. Keyboard: "
            "<kbd>R</kbd>/<kbd>G</kbd> in part 1, <kbd>←</kbd>/<kbd>→</kbd> in part 2.</p>"
            f"{resume}<form method=post action=/start><div class=row>"
            "<input name=rater id=rater placeholder='your name or initials (optional)' "
            "maxlength=80><button id=start>Start a new session</button></div></form></div>"
        )
        return _page(body)

    async def start(request: Request) -> Response:
        if not _same_origin(request):
            return _error(403, "refused: a cross-site request")
        form = await request.form()
        session, _ = await run_in_threadpool(storage.new_session, db, str(form.get("rater", "")))
        response = RedirectResponse("/rate", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    async def resume(request: Request) -> Response:
        session = request.path_params["code"]
        try:
            await run_in_threadpool(storage.progress, db, session)
        except storage.RefusedError as err:
            return _error(err.status, str(err))
        response = RedirectResponse("/rate", status_code=303)
        response.set_cookie(COOKIE, session, httponly=True, samesite="strict", max_age=30 * 86400)
        return response

    async def rate(request: Request) -> Response:
        session = request.cookies.get(COOKIE, "")
        try:
            state = await run_in_threadpool(storage.progress, db, session)
        except storage.RefusedError as err:
            return _error(err.status, str(err))
        if state["item"] is None:
            return _page(f"<div class=card id=done><p>All {state['total']} items answered. "
                         "Thank you!</p></div>")  # fmt: skip
        return _page(_item_body(state, session))

    async def answer(request: Request) -> Response:
        if not _same_origin(request):
            return _error(403, "answer refused: a cross-site request")
        form = await request.form()
        try:
            await run_in_threadpool(
                storage.store_answer, db, request.cookies.get(COOKIE, ""),
                str(form.get("csrf", "")), form.get("item"), str(form.get("choice", "")),
            )  # fmt: skip
        except storage.RefusedError as err:
            return _error(err.status, str(err))
        return RedirectResponse("/rate", status_code=303)

    async def img(request: Request) -> Response:
        try:
            png = await run_in_threadpool(
                storage.image, db, request.cookies.get(COOKIE, ""), request.path_params["token"]
            )
        except storage.RefusedError as err:
            return Response(str(err), status_code=err.status, media_type="text/plain")
        return Response(png, media_type="image/png", headers=HEADERS)

    def asset(text: str, kind: str):  # noqa: ANN202
        async def serve(request: Request) -> Response:
            return Response(text, media_type=kind, headers={"Cache-Control": "max-age=3600"})

        return serve

    return Starlette(
        routes=[
            Route("/", index),
            Route("/start", start, methods=["POST"]),
            Route("/resume/{code}", resume),
            Route("/rate", rate),
            Route("/answer", answer, methods=["POST"]),
            Route("/img/{token}", img),
            Route("/app.css", asset(CSS, "text/css")),
            Route("/app.js", asset(JS, "text/javascript")),
            Route("/favicon.ico", asset("", "image/x-icon")),
        ]
    )


def serve(db: str | Path, host: str = "127.0.0.1", port: int = 8000) -> None:
    r"""Serve the evaluation in ``db`` with uvicorn until interrupted."""
    import uvicorn

    uvicorn.run(make_app(db), host=host, port=port, log_level="warning")
