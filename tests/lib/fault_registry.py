"""A misbehaving front for a real registry, to test how capsa pulls: a small
HTTP server on 127.0.0.1 that proxies the distribution API to a backend
registry (lib.registry.Registry) and, as asked, adds token authentication or
breaks things.

    with FaultRegistry(registry.host, bearer=True, drop_once=True) as fault:
        run_capsa(["pull", fault.ref("test/busybox:latest")])
        assert fault.blob_gets()

Options:
    bearer          /v2/ answers 401 with a Bearer challenge whose realm is this
                    server's /token; requests must carry a token it issued.
    credentials     (user, password) the /token endpoint requires as Basic
                    authentication (with bearer), or that /v2/ itself requires
                    with a Basic challenge (without bearer).
    refresh_token   with bearer: the /token endpoint also takes an OAuth2 POST
                    (grant_type=refresh_token) carrying this token, as docker's
                    identity tokens are used.
    drop_once       the first blob answer larger than BIG_BLOB is cut off in the
                    middle (the connection closed after half its bytes).
    honor_range     False: Range headers are not passed on, so the backend sends
                    whole blobs (200) where a resume asked for the rest.
    tamper          the bytes of blobs larger than BIG_BLOB are changed (same
                    length), every time.
    grow            blobs larger than BIG_BLOB come with extra bytes appended.
    wrong_digest    manifests come with a Docker-Content-Digest header that is
                    not their digest.
    redirect_blobs  blob GETs are answered 307 to a second server on another
                    port, which serves the blob (and records its requests in
                    .redirected, to check that no Authorization header got there).
    status          every /v2/ request is answered with this HTTP status.

Every request is recorded in .requests (method, path, headers). A TLS
handshake is refused at once (the connection closed), as a plain-HTTP server
that is not fooled by it, so clients that try HTTPS first move on quickly.
Everything listens on 127.0.0.1 and stops with stop() or the with block.
"""

import base64
import http.client
import http.server
import json
import secrets
import socket
import threading
import urllib.parse
from dataclasses import dataclass, field

BIG_BLOB = 64 * 1024
BACKEND_TIMEOUT = 30.0
HANDLER_TIMEOUT = 30.0
COPY_CHUNK = 64 * 1024
SERVICE = "fault-registry"

# Headers of the backend's answer that are passed on to the client.
PASSED_HEADERS = ("Content-Type", "Content-Length", "Content-Range", "Docker-Content-Digest", "Accept-Ranges",
                  "Docker-Distribution-Api-Version", "Etag")


@dataclass
class Request:
    method: str
    path: str
    headers: dict = field(default_factory=dict)

    def header(self, name):
        for k, v in self.headers.items():
            if k.lower() == name.lower():
                return v
        return None


def _is_blob_get(method, path):
    return method == "GET" and path.startswith("/v2/") and "/blobs/sha256:" in path


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = HANDLER_TIMEOUT
    fault = None         # the FaultRegistry (set on a subclass per server)
    is_redirect_target = False

    def log_message(self, fmt, *args):
        pass

    def handle(self):
        try:
            first = self.connection.recv(1, socket.MSG_PEEK)
        except OSError:
            return
        if first == b"\x16":     # a TLS ClientHello: this server speaks plain HTTP only
            return
        super().handle()

    # ---- answers ----

    def _send(self, status, body=b"", headers=None, content_type="application/json"):
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, status, code, message, headers=None):
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(status, body, headers)

    # ---- dispatch ----

    def do_GET(self):
        self._dispatch()

    def do_HEAD(self):
        self._dispatch()

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self.post_body = self.rfile.read(min(length, 65536)).decode(errors="replace") if length else ""
        self._dispatch()

    def _dispatch(self):
        f = self.fault
        req = Request(self.command, self.path, dict(self.headers.items()))
        if self.is_redirect_target:
            f._record(f.redirected, req)
            return self._serve_redirected()
        f._record(f.requests, req)
        path = urllib.parse.urlsplit(self.path).path
        if path == "/token":
            return self._token()
        if not path.startswith("/v2/"):
            return self._error(404, "NOT_FOUND", "not found")
        if f.status:
            return self._error(f.status, "INJECTED", f"injected HTTP {f.status}")
        if not self._authorized(path):
            return
        if _is_blob_get(self.command, path) and f.redirect_blobs:
            digest = path.rsplit("/", 1)[1]
            location = f"http://127.0.0.1:{f.redirect_port}{path}?signature={secrets.token_hex(8)}"
            return self._send(307, b"", {"Location": location, "Docker-Content-Digest": digest})
        self._proxy(path)

    # ---- authentication ----

    def _basic_ok(self):
        user, password = self.fault.credentials
        want = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return self.headers.get("Authorization") == want

    def _authorized(self, path):
        f = self.fault
        if f.bearer:
            auth = self.headers.get("Authorization") or ""
            if auth.startswith("Bearer ") and auth[7:] in f.tokens:
                return True
            repo = path[4:].split("/manifests/")[0].split("/blobs/")[0]
            challenge = (f'Bearer realm="http://127.0.0.1:{f.port}/token",service="{SERVICE}",'
                         f'scope="repository:{repo}:pull"')
            self._error(401, "UNAUTHORIZED", "authentication required", {"WWW-Authenticate": challenge})
            return False
        if f.credentials:
            if self._basic_ok():
                return True
            self._error(401, "UNAUTHORIZED", "authentication required",
                        {"WWW-Authenticate": 'Basic realm="fault-registry"'})
            return False
        return True

    def _token(self):
        f = self.fault
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
        if self.command == "POST":
            query = urllib.parse.parse_qs(self.post_body)
            if (not f.refresh_token or query.get("grant_type") != ["refresh_token"]
                    or query.get("refresh_token") != [f.refresh_token]):
                return self._error(401, "UNAUTHORIZED", "bad refresh token")
        elif f.credentials and not self._basic_ok():
            return self._error(401, "UNAUTHORIZED", "bad credentials")
        if query.get("service") != [SERVICE] or not query.get("scope", [""])[0].startswith("repository:"):
            return self._error(400, "BAD_REQUEST", "service and scope are required")
        token = secrets.token_urlsafe(24)
        with f.lock:
            f.tokens.add(token)
        key = "access_token" if self.command == "POST" else "token"
        self._send(200, json.dumps({key: token, "expires_in": 300}).encode())

    # ---- proxying ----

    def _backend_request(self, path):
        headers = {}
        for name in ("Accept", "Range"):
            if self.headers.get(name) and (name != "Range" or self.fault.honor_range):
                headers[name] = self.headers[name]
        conn = http.client.HTTPConnection(self.fault.backend_host, timeout=BACKEND_TIMEOUT)
        conn.request(self.command, path, headers=headers)
        return conn, conn.getresponse()

    def _proxy(self, path):
        f = self.fault
        conn, resp = self._backend_request(self.path)
        try:
            body_len = int(resp.getheader("Content-Length") or 0)
            is_big_blob = _is_blob_get(self.command, path) and resp.status in (200, 206) and body_len > BIG_BLOB
            drop = False
            if is_big_blob and f.drop_once:
                with f.lock:
                    drop, f.drop_once = f.drop_once, False
            extra = b"\0" * 1000 if is_big_blob and f.grow else b""
            self.send_response(resp.status)
            for name in PASSED_HEADERS:
                value = resp.getheader(name)
                if value is not None and name == "Content-Length":
                    value = str(body_len + len(extra))
                if value is not None and name == "Docker-Content-Digest" and f.wrong_digest:
                    value = "sha256:" + "1" * 64
                if value is not None:
                    self.send_header(name, value)
            self.end_headers()
            if self.command == "HEAD":
                return
            sent = 0
            while True:
                chunk = resp.read(COPY_CHUNK)
                if not chunk:
                    break
                if is_big_blob and f.tamper:
                    chunk = bytes(b ^ 0x5A for b in chunk)
                if drop and sent + len(chunk) >= body_len // 2:
                    self.wfile.write(chunk[:body_len // 2 - sent])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    with f.lock:
                        f.dropped += 1
                    return
                self.wfile.write(chunk)
                sent += len(chunk)
            self.wfile.write(extra)
        finally:
            conn.close()

    def _serve_redirected(self):
        """The second server: blob storage reached through a redirect."""
        path = urllib.parse.urlsplit(self.path).path
        if not _is_blob_get(self.command, path):
            return self._error(404, "NOT_FOUND", "not found")
        conn, resp = self._backend_request(path)
        try:
            body = resp.read()
        finally:
            conn.close()
        headers = {k: resp.getheader(k) for k in ("Content-Range",) if resp.getheader(k)}
        self._send(resp.status, body, headers, resp.getheader("Content-Type") or "application/octet-stream")


class FaultRegistry:
    def __init__(self, backend_host, *, bearer=False, credentials=None, refresh_token=None, drop_once=False,
                 honor_range=True, tamper=False, grow=False, wrong_digest=False, redirect_blobs=False, status=None):
        self.backend_host = backend_host
        self.bearer = bearer
        self.credentials = credentials
        self.refresh_token = refresh_token
        self.grow = grow
        self.wrong_digest = wrong_digest
        self.drop_once = drop_once
        self.honor_range = honor_range
        self.tamper = tamper
        self.redirect_blobs = redirect_blobs
        self.status = status
        self.lock = threading.Lock()
        self.tokens = set()
        self.requests = []
        self.redirected = []
        self.dropped = 0
        self._servers = []
        self.port = self.redirect_port = None

    def _record(self, where, req):
        with self.lock:
            where.append(req)

    def _serve(self, is_redirect_target):
        handler = type("Handler", (_Handler,), {"fault": self, "is_redirect_target": is_redirect_target})
        server = _Server(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        thread.start()
        self._servers.append((server, thread))
        return server.server_address[1]

    def start(self):
        try:
            self.port = self._serve(False)
            self.redirect_port = self._serve(True)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for server, thread in self._servers:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
        self._servers = []

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def host(self):
        return f"127.0.0.1:{self.port}"

    def ref(self, name):
        return f"{self.host}/{name}"

    def api_requests(self, kind=None):
        """Recorded /v2/ requests; kind "blobs" or "manifests" narrows them."""
        with self.lock:
            reqs = list(self.requests)
        return [r for r in reqs if r.path.startswith("/v2/") and (kind is None or f"/{kind}/" in r.path)]

    def blob_gets(self):
        return [r for r in self.api_requests("blobs") if r.method == "GET"]

    def token_requests(self):
        with self.lock:
            return [r for r in self.requests if r.path.startswith("/token")]
