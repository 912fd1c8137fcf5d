"""A local stand-in for Grafana's HTTP API (no Grafana server installs on this kind of machine).

It answers the calls the portal makes as Grafana 11 does: folders by uid (404 when absent,
409 for a title taken), `POST /api/dashboards/db` (versions counted per uid, the dashboard's
`url`), `DELETE /api/dashboards/uid/<uid>` (404 when absent); it refuses a wrong bearer token
with 401, and can be told to fail the next calls with a status, as an outage would.
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field

from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

TOKEN = "grafana-test-token"


@dataclass
class FakeGrafana:
    server: HTTPServer
    folders: dict[str, dict] = field(default_factory=dict)
    dashboards: dict[str, dict] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url_for("/").rstrip("/")

    def fail_next(self, status: int, times: int = 1) -> None:
        with self.lock:
            self.failures.extend([status] * times)

    def handle(self, request: Request) -> Response:
        with self.lock:
            self.requests.append((request.method, request.path))
            if request.headers.get("Authorization") != f"Bearer {TOKEN}":
                return _json({"message": "invalid API key"}, 401)
            if self.failures:
                return _json({"message": "service unavailable"}, self.failures.pop(0))
            return self._route(request)

    def _route(self, request: Request) -> Response:
        path, method = request.path, request.method
        if path == "/api/health":
            return _json({"database": "ok"})
        if path == "/api/folders" and method == "POST":
            body = request.get_json()
            if any(f["title"] == body["title"] for f in self.folders.values()):
                return _json({"message": "a folder with the same name already exists"}, 409)
            folder = {"uid": body["uid"], "title": body["title"], "version": 1}
            self.folders[body["uid"]] = folder
            return _json(folder)
        if path.startswith("/api/folders/"):
            uid = path.removeprefix("/api/folders/")
            folder = self.folders.get(uid)
            if folder is None:
                return _json({"message": "folder not found"}, 404)
            if method == "PUT":
                folder.update(title=request.get_json()["title"], version=folder["version"] + 1)
            return _json(folder)
        if path == "/api/dashboards/db" and method == "POST":
            body = request.get_json()
            model = body["dashboard"]
            if body.get("folderUid") not in self.folders:
                return _json({"message": "folder not found"}, 400)
            uid = model["uid"]
            version = self.dashboards.get(uid, {}).get("version", 0) + 1
            self.dashboards[uid] = {
                "model": model,
                "folder": body["folderUid"],
                "version": version,
                "message": body.get("message", ""),
            }
            slug = "-".join(model["title"].lower().split())
            return _json(
                {"uid": uid, "version": version, "status": "success", "url": f"/d/{uid}/{slug}"}
            )
        if path.startswith("/api/dashboards/uid/") and method == "DELETE":
            uid = path.removeprefix("/api/dashboards/uid/")
            if self.dashboards.pop(uid, None) is None:
                return _json({"message": "Dashboard not found"}, 404)
            return _json({"title": uid, "message": "Dashboard deleted"})
        return _json({"message": "not found"}, 404)


def _json(body: dict, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def start() -> FakeGrafana:
    server = HTTPServer(host="127.0.0.1", port=0)
    server.start()
    fake = FakeGrafana(server)
    server.expect_request(re.compile(".*")).respond_with_handler(fake.handle)
    return fake
