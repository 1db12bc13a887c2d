"""Reports served over HTTP, so that the UI's links open them in a browser, locally and on S3.

Dagster shows a metadata URL as a link and a path only as text to copy. Every report (evidently's
drift page of a day, and the files it loads) is stored in the lake beside its partition and linked
as `<PLATFORM_REPORTS_URL>/<key>`; this server answers those URLs by reading the object from the
lake, a folder or S3, with the platform's own credentials. `make run` starts it beside Dagster; in
production it runs beside the webserver (`python -m resources.reports`), or PLATFORM_REPORTS_URL
names a static host in front of the lake's bucket, since the keys are the same.

Why not S3 presigned URLs: they expire within seven days, while Dagster keeps metadata for good, so
every older link would be dead. Why not a public bucket: it would publish the lake. The server
answers only report files (pages, scripts, fonts), never tables or models, and only GET.
"""

import argparse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from urllib.parse import unquote, urlsplit

from resources import settings
from resources.storage import ObjectStore, check_key

# The files a report is made of; anything else in the lake (Parquet, model artifacts and
# records) is not served.
REPORT_SUFFIXES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript",
    ".woff2": "font/woff2",
}


def report_url(key: str) -> str:
    """The link to the report stored under `key` in the lake."""
    return f"{settings.reports_url()}/{check_key(key)}"


def report_key(path: str) -> str | None:
    """The lake key a request path names, or None when it names no report file."""
    key = unquote(urlsplit(path).path).lstrip("/")
    try:
        check_key(key)
    except ValueError:
        return None
    return key if PurePosixPath(key).suffix in REPORT_SUFFIXES else None


def report_server(store: ObjectStore, host: str, port: int) -> ThreadingHTTPServer:
    """A server of the report files of `store` on host:port (call `serve_forever`)."""

    class Reports(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
            key = report_key(self.path)
            if key is None:
                self.send_error(HTTPStatus.NOT_FOUND, "not a report")
                return
            try:
                content = store.get(key)
            except FileNotFoundError:
                self.send_error(HTTPStatus.NOT_FOUND, f"no report {key}")
                return
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", REPORT_SUFFIXES[PurePosixPath(key).suffix])
            self.send_header("Content-Length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args) -> None:
            """Requests are not logged: the terminal of `make run` says what the platform does."""

    return ThreadingHTTPServer((host, port), Reports)


def main(argv: list[str] | None = None) -> None:
    """Serve the reports of the lake the settings name, where PLATFORM_REPORTS_URL points."""
    from resources.lake import Lake

    address = urlsplit(settings.reports_url())
    parser = argparse.ArgumentParser(
        prog="python -m resources.reports", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default=address.hostname, help="default: PLATFORM_REPORTS_URL's")
    parser.add_argument(
        "--port", type=int, default=address.port or 80, help="default: PLATFORM_REPORTS_URL's"
    )
    args = parser.parse_args(argv)
    server = report_server(Lake().store, args.host, args.port)
    print(f"Serving the reports of {Lake().location} on http://{args.host}:{args.port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.server_close()


if __name__ == "__main__":
    main()
