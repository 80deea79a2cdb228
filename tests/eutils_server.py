"""A real HTTP server on 127.0.0.1 that replays recorded E-utilities replies and injects faults.

esearch replies use the recorded ``esearch2.xml`` (its header, WebEnv and QueryKey) with the id list set to the
PMIDs of a recorded PubMed file; efetch replies are slices of that recorded file's ``PubmedArticle`` elements.
"""

from __future__ import annotations

import gzip
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures" / "pubmed_xml"


def _articles(path: Path) -> tuple[str, list[tuple[str, str]]]:
    text = gzip.open(path, "rt", encoding="utf-8").read() if path.suffix == ".gz" else path.read_text("utf-8")
    header = text[: text.index("<PubmedArticleSet>")]
    articles = re.findall(r"<PubmedArticle>.*?</PubmedArticle>", text, flags=re.S)
    return header, [(re.search(r"<PMID[^>]*>(\d+)</PMID>", a).group(1), a) for a in articles]


class EUtilsServer:
    """Serve ``/esearch.fcgi`` and ``/efetch.fcgi``; ``faults`` maps a request key to a list of faults."""

    def __init__(self, records: Path = FIXTURES / "pubmed26n1334.xml.gz") -> None:
        self.header, self.articles = _articles(records)
        self.pmids = [p for p, _ in self.articles]
        template = (FIXTURES / "esearch2.xml").read_text("utf-8")
        ids = "".join(f"<Id>{p}</Id>\n" for p in self.pmids)
        self.esearch = re.sub(r"<IdList>.*</IdList>", f"<IdList>\n{ids}</IdList>", template, flags=re.S)
        self.esearch = re.sub(r"<Count>\d+</Count>", f"<Count>{len(self.pmids)}</Count>", self.esearch)
        self.esearch = re.sub(r"<RetMax>\d+</RetMax>", f"<RetMax>{len(self.pmids)}</RetMax>", self.esearch)
        self.faults: dict[str, list[str]] = {}
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.served: Counter[str] = Counter()
        self.hang_seconds = 3.0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                parts = urlsplit(self.path)
                server.handle(self, parts.path, parse_qs(parts.query))

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                server.handle(self, urlsplit(self.path).path, parse_qs(body))

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/entrez/eutils/"

    def __enter__(self) -> EUtilsServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, h: BaseHTTPRequestHandler, path: str, query: dict[str, list[str]]) -> None:
        params = {k: v[0] for k, v in query.items()}
        endpoint = path.removeprefix("/entrez/eutils/")
        self.requests.append((endpoint, params))
        if endpoint == "esearch.fcgi":
            key, body = "esearch", self.esearch.encode()
        elif endpoint == "efetch.fcgi":
            if "id" in params:
                wanted = set(params["id"].split(","))
                chosen = [a for p, a in self.articles if p in wanted]
                key = "efetch-ids"
            else:
                start, size = int(params["retstart"]), int(params["retmax"])
                chosen = [a for _, a in self.articles[start : start + size]]
                key = f"efetch-{start}"
            body = (self.header + "<PubmedArticleSet>\n" + "\n".join(chosen) + "\n</PubmedArticleSet>\n").encode()
        else:
            h.send_error(404)
            return
        fault = self.faults.get(key, [None]).pop(0) if self.faults.get(key) else None
        if fault in ("429", "500", "503"):
            h.send_response(int(fault))
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if fault == "timeout":
            time.sleep(self.hang_seconds)
        if fault == "truncated":
            body = body[: len(body) // 2]
        self.served[key] += 1
        h.send_response(200)
        h.send_header("Content-Type", "text/xml; charset=UTF-8")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass
