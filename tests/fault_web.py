"""A loopback web that misbehaves on purpose, one fault per path prefix.

Every fault ``NAME`` has a feed at ``/NAME/feed.xml`` listing one article at
``/NAME/article`` (unless the fault is in the feed itself), served as the
fault says: an error status that clears after a few tries, a hang, a
connection reset halfway, a body shorter than its Content-Length, a redirect
loop or a redirect to another host, a gzip bomb, 50 MB, nothing, a PDF, text
in a legacy Cyrillic encoding with a missing or wrong charset, broken markup,
broken feeds. Every request is logged with its path, the Host it named and the
time, so a test can tell what was fetched, how often, and when.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.loopback import LoopbackServer

HANG_SECONDS = 10.0  # longer than the download timeout the matrix crawl uses
BIG = 50 * 1024 * 1024


def article_html(title: str, body: str, *, charset: str | None = "utf-8") -> str:
    """An article page in the shape the outlets use (metadata, a menu, the body)."""
    meta = f'<meta charset="{charset}">' if charset else ""
    paragraphs = "".join(f"<p>{p}</p>" for p in body.split("\n"))
    return (
        f"<!doctype html><html><head>{meta}<title>{title}</title>"
        f'<meta property="og:title" content="{title}">'
        '<meta property="article:published_time" content="2023-09-27T10:00:00+03:00">'
        "</head><body><nav><a href='/'>Головна</a> <a href='/news'>Новини</a></nav>"
        f"<article><h1>{title}</h1>{paragraphs}</article>"
        "<footer>© Видання</footer></body></html>"
    )


UK_TITLE = "Росія вивезла дітей з Херсонщини"
UK_BODY = (
    "Російські окупанти примусово вивезли групу дітей з окупованої Херсонщини до Криму, "
    "повідомив Омбудсман. Їх назвали учасниками 'оздоровчого табору'.\n"
    "Україна повернула одинадцять дітей, яких раніше депортували до Росії. Рідні чекали на "
    "них понад рік, а повернення стало можливим завдяки посередництву третіх країн.\n"
    "За даними порталу 'Діти війни', станом на вересень Росія депортувала щонайменше "
    "дев'ятнадцять тисяч українських дітей."
)
EN_TITLE = "Children returned from Russia"
EN_BODY = (
    "Ukraine has brought back eleven children who had been deported to Russia, the "
    "Ombudsman said on Wednesday, thanking the mediators who made the return possible.\n"
    "The children had been taken from occupied Kherson Oblast to a so-called health "
    "improvement camp in Crimea and were never sent home by the occupying authorities."
)


def rss(base: str, name: str, links: list[str] | None = None) -> bytes:
    items = "".join(
        f"<item><title>Entry {i}</title><link>{link}</link><guid>{name}-{i}</guid>"
        "<pubDate>Wed, 27 Sep 2023 07:00:00 GMT</pubDate></item>"
        for i, link in enumerate(links or [f"{base}/{name}/article"])
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>{name}</title><link>{base}/</link><description>d</description>"
        f"{items}</channel></rss>"
    ).encode()


@dataclass
class Answer:
    status: int = 200
    body: bytes = b""
    content_type: str = "text/html; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = ()


Behaviour = Callable[["FaultHandler", int], Answer | None]  # the request's number for its path


class FaultWeb:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, float]] = []  # path, Host header, time
        self.routes: dict[str, Behaviour] = {}
        self._lock = threading.Lock()
        handler = type("Handler", (FaultHandler,), {"web": self})
        self.server = LoopbackServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        # The same server under another name: another site, as far as a crawl knows.
        self.elsewhere = f"http://localhost:{self.port}"

    def route(self, path: str, behaviour: Behaviour) -> None:
        self.routes[path] = behaviour

    def page(self, path: str, answer: Answer) -> None:
        self.routes[path] = lambda handler, n: answer

    def count(self, path: str) -> int:
        return sum(1 for p, _, _ in self.requests if p == path)

    def times(self, path: str) -> list[float]:
        return [t for p, _, t in self.requests if p == path]

    def hosts(self) -> set[str]:
        return {host.split(":")[0] for _, host, _ in self.requests}

    @contextmanager
    def serve(self) -> Iterator[FaultWeb]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


class FaultHandler(BaseHTTPRequestHandler):
    web: FaultWeb

    def do_GET(self) -> None:
        path = self.path
        with self.web._lock:
            number = sum(1 for p, _, _ in self.web.requests if p == path)
            self.web.requests.append((path, self.headers.get("Host", ""), time.monotonic()))
        behaviour = self.web.routes.get(path)
        answer = behaviour(self, number) if behaviour else Answer(404, b"")
        if answer is None:  # the behaviour wrote (or broke) the connection itself
            return
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.content_type)
        for name, value in answer.headers:
            self.send_header(name, value)
        if not any(name.lower() == "content-length" for name, _ in answer.headers):
            self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def raw(self, head: str, body: bytes = b"") -> None:
        """Write a response exactly as given (no header fixed up)."""
        self.wfile.write(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        self.wfile.flush()

    def reset(self) -> None:
        """Abort the connection: an RST, not a clean close."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()

    def log_message(self, format: str, *args: object) -> None:
        pass


# Behaviours used by the fault matrix.


def statuses_then(answer: Answer, *statuses: int, headers: tuple[tuple[str, str], ...] = ()):  # type: ignore[no-untyped-def]
    """Answer ``statuses`` to the first requests, then ``answer``."""

    def behave(handler: FaultHandler, n: int) -> Answer:
        if n < len(statuses):
            return Answer(statuses[n], b"", "text/plain", headers)
        return answer

    return behave


def hang(handler: FaultHandler, n: int) -> Answer:
    time.sleep(HANG_SECONDS)
    return Answer(200, article_html(EN_TITLE, EN_BODY).encode())


def reset_mid_body(handler: FaultHandler, n: int) -> None:
    body = article_html(EN_TITLE, EN_BODY).encode()
    handler.raw(
        f"HTTP/1.1 200 OK\nContent-Type: text/html; charset=utf-8\nContent-Length: {len(body)}\n",
        body[: len(body) // 2],
    )
    time.sleep(0.1)
    handler.reset()


def truncated(handler: FaultHandler, n: int) -> None:
    body = article_html(EN_TITLE, EN_BODY).encode()
    handler.raw(
        "HTTP/1.1 200 OK\nContent-Type: text/html; charset=utf-8\n"
        f"Content-Length: {len(body) + 5000}\nConnection: close\n",
        body,
    )
    handler.close_connection = True


def gzip_bomb(handler: FaultHandler, n: int) -> Answer:
    # 50 MB of zeros in about 50 KB: the limit must hold after decompression.
    return Answer(
        200,
        gzip.compress(b"\0" * BIG, compresslevel=9),
        headers=(("Content-Encoding", "gzip"),),
    )


def oversized(handler: FaultHandler, n: int, *, declared: bool = True) -> None:
    head = "HTTP/1.1 200 OK\nContent-Type: text/html; charset=utf-8\n"
    head += f"Content-Length: {BIG}\n" if declared else "Connection: close\n"
    handler.raw(head)
    chunk = b"<p>" + b"x" * 65530 + b"</p>"
    try:
        for _ in range(BIG // len(chunk)):
            handler.wfile.write(chunk)
    except OSError:
        pass  # the client gave up, as it should
    handler.close_connection = True
