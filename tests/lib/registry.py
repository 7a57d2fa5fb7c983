"""A throwaway local registry for tests and benchmarks: Debian's
docker-registry (the CNCF distribution registry) on 127.0.0.1, plain HTTP,
filesystem storage in a temporary directory, deletes enabled. Images are
pushed into it from OCI image layouts with skopeo.

    with Registry() as reg:
        reg.push(layout_dir, "test/busybox:latest")
        ref = reg.ref("test/busybox:latest")     # "127.0.0.1:PORT/test/busybox:latest"

No root is needed. stop() (or leaving the with block) kills it and removes
its storage, also when the code inside failed.
"""

import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import ociimage

DOCKER_REGISTRY = "/usr/bin/docker-registry"
SKOPEO = "skopeo"
START_TIMEOUT = 30.0   # seconds until GET /v2/ must answer
PUSH_TIMEOUT = 300.0
PR_SET_PDEATHSIG = 1

CONFIG_TEMPLATE = """\
version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: {storage}
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
  redirect:
    disable: true
http:
  addr: 127.0.0.1:{port}
"""


class RegistryError(RuntimeError):
    pass


def _die_with_parent():
    """In the child before exec: be killed when the process that started us
    dies, so a killed test run leaves no registry behind."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def free_port():
    """A TCP port that was free a moment ago (the registry may still lose a
    race for it; start() retries then)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Requests to the local registry must never go through a proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http_get(url, timeout=5.0, headers=None):
    """(status, headers, body) of a GET; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with _NO_PROXY_OPENER.open(req, timeout=timeout) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


class Registry:
    def __init__(self, binary=DOCKER_REGISTRY, start_timeout=START_TIMEOUT):
        self.binary = binary
        self.start_timeout = start_timeout
        self.proc = None
        self.workdir = None
        self.port = None
        self.pushed = {}   # what push_test_images pushed: {name: digest}
        self._log = None

    # ---- lifecycle ----

    def start(self):
        if not os.access(self.binary, os.X_OK):
            raise RegistryError(f"{self.binary} is missing: apt-get install docker-registry")
        self.workdir = Path(tempfile.mkdtemp(prefix="capsa-registry-"))
        try:
            for _ in range(3):
                if self._start_once():
                    return self
            raise RegistryError(f"docker-registry could not bind a port after 3 tries:\n{self.log_tail()}")
        except BaseException:
            self.stop()
            raise

    def _start_once(self):
        """True when the registry answers; False when it lost the race for its
        port (the caller retries); raises on any other failure."""
        self.port = free_port()
        storage = self.workdir / "storage"
        storage.mkdir(exist_ok=True)
        config = self.workdir / "config.yml"
        config.write_text(CONFIG_TEMPLATE.format(storage=storage, port=self.port))
        # REGISTRY_* variables would override the generated config.
        env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
        if self._log:
            self._log.close()
        self._log = open(self.workdir / "registry.log", "wb")
        self.proc = subprocess.Popen([self.binary, "serve", str(config)], stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True, preexec_fn=_die_with_parent)
        deadline = time.monotonic() + self.start_timeout
        last_error = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.log_tail()
                self.proc = None
                if "address already in use" in log:
                    return False
                raise RegistryError(f"docker-registry exited at start:\n{log}")
            try:
                status, _, _ = http_get(f"{self.url}/v2/", timeout=2.0)
                if status == 200:
                    return True
                last_error = f"GET /v2/ answered {status}"
            except OSError as e:
                last_error = str(e)
            time.sleep(0.05)
        raise RegistryError(f"docker-registry did not answer GET {self.url}/v2/ within "
                            f"{self.start_timeout:.0f} s ({last_error}):\n{self.log_tail()}")

    def stop(self):
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            self.proc = None
        if self._log:
            self._log.close()
            self._log = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log_tail(self, max_bytes=4000):
        try:
            data = (self.workdir / "registry.log").read_bytes()
        except (OSError, TypeError):
            return "(no registry log)"
        return data[-max_bytes:].decode(errors="replace")

    # ---- addresses ----

    @property
    def host(self):
        """host:port, as image references want it."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self):
        return f"http://{self.host}"

    def ref(self, name):
        """'repo:tag' or 'repo@digest' -> HOST/repo:tag."""
        return f"{self.host}/{name}"

    # ---- content ----

    def push(self, layout_dir, ref, src_tag=None, timeout=PUSH_TIMEOUT):
        """Pushes the image tagged src_tag in the OCI layout layout_dir to
        HOST/ref ("repo:tag"). src_tag defaults to ref's tag, or the layout's
        only tag. An image index is pushed with every platform. Digests are
        kept as they are in the layout. Returns the pushed manifest (or index)
        digest."""
        layout_dir = Path(layout_dir)
        src_tag = src_tag or self._default_src_tag(layout_dir, ref)
        desc = ociimage.tagged_descriptor(layout_dir, src_tag)
        with tempfile.TemporaryDirectory(prefix="capsa-push-") as tmp:
            digest_file = Path(tmp) / "digest"
            argv = [SKOPEO, "--insecure-policy", "copy", "--quiet", "--dest-tls-verify=false",
                    "--preserve-digests", "--digestfile", str(digest_file)]
            if desc.get("mediaType") == ociimage.MEDIA_TYPE_INDEX:
                argv.append("--all")
            argv += [f"oci:{layout_dir}:{src_tag}", f"docker://{self.ref(ref)}"]
            run_tool(argv, timeout)
            return digest_file.read_text().strip()

    @staticmethod
    def _default_src_tag(layout_dir, ref):
        with open(layout_dir / "index.json") as f:
            tags = [(m.get("annotations") or {}).get(ociimage.REF_NAME_ANNOTATION)
                    for m in json.load(f).get("manifests", [])]
        tags = [t for t in tags if t]
        name = ref.split("@", 1)[0]
        tag = name.rsplit(":", 1)[1] if ":" in name.rsplit("/", 1)[-1] else None
        if tag in tags:
            return tag
        if len(tags) == 1:
            return tags[0]
        raise RegistryError(f"{layout_dir} has tags {tags}: say which one to push (src_tag)")

    def manifest(self, repo, reference, accept=None):
        """(status, headers, body) of GET /v2/<repo>/manifests/<reference>."""
        accept = accept or ", ".join([ociimage.MEDIA_TYPE_MANIFEST, ociimage.MEDIA_TYPE_INDEX,
                                      "application/vnd.docker.distribution.manifest.v2+json",
                                      "application/vnd.docker.distribution.manifest.list.v2+json"])
        return http_get(f"{self.url}/v2/{repo}/manifests/{reference}", headers={"Accept": accept})


def run_tool(argv, timeout):
    """Runs an image tool; raises RegistryError with its output when it fails."""
    try:
        proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout)
    except FileNotFoundError:
        raise RegistryError(f"{argv[0]} is missing: apt-get install {argv[0]}") from None
    except subprocess.TimeoutExpired:
        raise RegistryError(f"{' '.join(argv)} did not finish within {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise RegistryError(f"{' '.join(argv)} failed ({proc.returncode}):\n"
                            f"{proc.stderr.decode(errors='replace')[-4000:]}")
    return proc


def push_test_images(registry, layouts, refs=None):
    """Pushes the standard test images ({name: layout dir}, as
    testimages.build_all returns) to their testimages.REGISTRY_REFS names.
    Returns {name: pushed digest}."""
    from . import testimages
    refs = refs or testimages.REGISTRY_REFS
    pushed = {name: registry.push(layouts[name], refs[name], src_tag=testimages.TAG) for name in refs}
    registry.pushed.update(pushed)
    return pushed
