"""capsa pull from registries: tags, digests, image indexes, token
authentication, and a registry that misbehaves (lib.fault_registry in front of
the real test registry). Everything runs on 127.0.0.1; no guest is booted."""

import base64
import hashlib
import json
import threading
import time
from pathlib import Path

import pytest

from lib import registry as registry_lib
from lib.fault_registry import FaultRegistry

PULL_TIMEOUT = 60.0
# Four attempts with 0.5 + 1 + 2 s between them, plus slack for a loaded machine.
GIVE_UP_WITHIN = 30.0


def store_dir(env):
    return Path(env["XDG_DATA_HOME"]) / "capsa"


def stored_blobs(env):
    """{digest: path} of the blobs in the test's store, after checking that
    every one hashes to its name."""
    blobs = {}
    blob_dir = store_dir(env) / "blobs" / "sha256"
    for path in blob_dir.iterdir() if blob_dir.is_dir() else []:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert digest == path.name, f"blob {path} does not hash to its name"
        blobs["sha256:" + digest] = path
    return blobs


def image_names(run_capsa):
    r = run_capsa(["images"])
    assert r.returncode == 0, r.stderr
    return [line.split()[0] for line in r.stdout.splitlines()[1:] if line.strip()]


def image_ids(run_capsa):
    r = run_capsa(["images", "-q"])
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def pull(run_capsa, ref, *options, timeout=PULL_TIMEOUT):
    r = run_capsa(["pull", *options, ref], timeout=timeout)
    # Failures are expected in many tests: they must still be clean ones.
    assert "Sanitizer" not in r.stderr, r.stderr
    return r


def assert_pulled(run_capsa, env, name, manifest_digest):
    """name is listed with manifest_digest's id, and the store holds the manifest,
    its config and its layers, all intact."""
    assert name in image_names(run_capsa)
    assert manifest_digest.split(":")[1][:12] in image_ids(run_capsa)
    blobs = stored_blobs(env)
    manifest = json.loads(blobs[manifest_digest].read_bytes())
    for desc in [manifest["config"]] + manifest["layers"]:
        assert desc["digest"] in blobs, f"{desc['digest']} missing from the store"
        assert blobs[desc["digest"]].stat().st_size == desc["size"]


def index_entry(registry, repo, arch):
    status, _, body = registry.manifest(repo, "latest")
    assert status == 200
    for m in json.loads(body)["manifests"]:
        if (m.get("platform") or {}).get("architecture") == arch:
            return m["digest"]
    raise AssertionError(f"{repo} has no {arch} entry")


def write_docker_config(env, host, user, password, identity_token=None):
    entry = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    if identity_token:
        entry["identitytoken"] = identity_token
    path = Path(env["DOCKER_CONFIG"]) / "config.json"
    path.write_text(json.dumps({"auths": {f"http://{host}": entry}}))


@pytest.fixture
def fault(registry):
    """fault(**options) -> a started FaultRegistry in front of the test registry,
    stopped after the test."""
    started = []

    def make(**options):
        f = FaultRegistry(registry.host, **options).start()
        started.append(f)
        return f
    yield make
    for f in started:
        f.stop()


# ---- the happy paths ----


def test_pull_by_tag(run_capsa, capsa_env, registry):
    ref = registry.ref("test/busybox")
    r = pull(run_capsa, ref)
    assert r.returncode == 0, r.stderr
    # Not a terminal: one line per downloaded blob.
    assert ": downloaded " in r.stderr
    assert_pulled(run_capsa, capsa_env, f"{ref}:latest", registry.pushed["busybox"])


def test_pull_by_digest(run_capsa, capsa_env, registry):
    digest = registry.pushed["user"]
    ref = registry.ref(f"test/user@{digest}")
    r = pull(run_capsa, ref, "-q")
    assert r.returncode == 0, r.stderr
    assert ": downloaded " not in r.stderr
    assert_pulled(run_capsa, capsa_env, ref, digest)


def test_pull_by_wrong_digest_fails(run_capsa, registry):
    # A digest the repository does not have.
    ref = registry.ref("test/user@sha256:" + "0" * 64)
    r = pull(run_capsa, ref)
    assert r.returncode != 0
    assert "not found in registry" in r.stderr
    assert image_names(run_capsa) == []


def test_pull_index_selects_platform(run_capsa, capsa_env, registry):
    ref = registry.ref("test/multiarch")
    r = pull(run_capsa, ref)
    assert r.returncode == 0, r.stderr
    amd64 = index_entry(registry, "test/multiarch", "amd64")
    assert_pulled(run_capsa, capsa_env, f"{ref}:latest", amd64)
    # The index itself is not kept.
    assert registry.pushed["multiarch"] not in stored_blobs(capsa_env)

    r = pull(run_capsa, ref, "--platform", "linux/arm64")
    assert r.returncode == 0, r.stderr
    arm64 = index_entry(registry, "test/multiarch", "arm64")
    assert arm64 != amd64
    assert_pulled(run_capsa, capsa_env, f"{ref}:latest", arm64)


def test_pull_platform_not_offered(run_capsa, registry):
    r = pull(run_capsa, registry.ref("test/multiarch"), "--platform", "linux/s390x")
    assert r.returncode != 0
    assert "linux/s390x" in r.stderr and "linux/amd64" in r.stderr
    assert image_names(run_capsa) == []


def test_repull_downloads_nothing(run_capsa, capsa_env, fault):
    f = fault()
    ref = f.ref("test/layers:latest")
    r = pull(run_capsa, ref)
    assert r.returncode == 0, r.stderr
    first = len(f.blob_gets())
    assert first > 0
    before = stored_blobs(capsa_env)

    r = pull(run_capsa, ref)
    assert r.returncode == 0, r.stderr
    assert len(f.blob_gets()) == first, "a re-pull downloaded blobs again"
    assert stored_blobs(capsa_env) == before


# ---- errors ----


def test_unknown_image(run_capsa, registry):
    r = pull(run_capsa, registry.ref("test/nonexistent:1.0"))
    assert r.returncode != 0
    assert f"image {registry.host}/test/nonexistent:1.0 not found in registry {registry.host}" in r.stderr


def test_unreachable_registry(run_capsa):
    host = f"127.0.0.1:{registry_lib.free_port()}"
    start = time.monotonic()
    r = pull(run_capsa, f"{host}/test/busybox")
    assert r.returncode != 0
    assert f"cannot reach registry {host}" in r.stderr
    assert time.monotonic() - start < GIVE_UP_WITHIN


def test_server_errors_are_retried_then_reported(run_capsa, fault):
    f = fault(status=500)
    start = time.monotonic()
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert "500" in r.stderr and "gave up after 4 attempts" in r.stderr
    assert time.monotonic() - start < GIVE_UP_WITHIN
    assert len(f.api_requests("manifests")) == 4
    assert image_names(run_capsa) == []


def test_tampered_blob_is_rejected(run_capsa, capsa_env, fault):
    f = fault(tamper=True)
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert "corrupt" in r.stderr
    assert image_names(run_capsa) == []
    # Nothing got a name it does not deserve (stored_blobs checks every hash),
    # and no partial download is left behind for the corrupt blob.
    stored_blobs(capsa_env)
    assert not list((store_dir(capsa_env) / "tmp").glob("*.partial"))


def test_oversized_blob_is_rejected(run_capsa, capsa_env, fault):
    f = fault(grow=True)
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert "sent more than the" in r.stderr
    assert image_names(run_capsa) == []
    stored_blobs(capsa_env)


def test_manifest_digest_header_mismatch(run_capsa, fault):
    f = fault(wrong_digest=True)
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert "Docker-Content-Digest" in r.stderr
    assert image_names(run_capsa) == []


# ---- authentication ----


def test_bearer_token(run_capsa, capsa_env, registry, fault):
    f = fault(bearer=True)
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])
    # One token for the whole pull, sent with every blob request.
    assert len(f.token_requests()) == 1
    assert f.token_requests()[0].header("Authorization") is None
    assert all((b.header("Authorization") or "").startswith("Bearer ") for b in f.blob_gets())


def test_bearer_token_with_credentials(run_capsa, capsa_env, registry, fault):
    f = fault(bearer=True, credentials=("alice", "s3cret"))
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert "denied" in r.stderr and "docker login" in r.stderr

    write_docker_config(capsa_env, f.host, "alice", "s3cret")
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])
    assert f.token_requests()[-1].header("Authorization").startswith("Basic ")


def test_bearer_token_from_identity_token(run_capsa, capsa_env, registry, fault):
    """docker login with an OAuth2 registry stores an identity token: it is
    exchanged for an access token with a refresh-token POST."""
    f = fault(bearer=True, credentials=("alice", "not-used"), refresh_token="refresh-xyz")
    write_docker_config(capsa_env, f.host, "<token>", "", identity_token="refresh-xyz")
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])
    assert [t.method for t in f.token_requests()] == ["POST"]


def test_basic_auth_registry(run_capsa, capsa_env, registry, fault):
    f = fault(credentials=("bob", "pw"))
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert f"registry {f.host} requires credentials; run docker login" in r.stderr

    write_docker_config(capsa_env, f.host, "bob", "wrong")
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode != 0
    assert "access to" in r.stderr and "denied" in r.stderr

    write_docker_config(capsa_env, f.host, "bob", "pw")
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])


def test_redirected_blobs_get_no_authorization(run_capsa, capsa_env, registry, fault):
    f = fault(bearer=True, redirect_blobs=True)
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])
    assert f.redirected, "no blob was fetched from the redirect target"
    assert all(req.header("Authorization") is None for req in f.redirected)


# ---- interrupted downloads ----


@pytest.mark.parametrize("honor_range", [True, False], ids=["resumed", "restarted"])
def test_dropped_connection_mid_blob(run_capsa, capsa_env, registry, fault, honor_range):
    f = fault(drop_once=True, honor_range=honor_range)
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert f.dropped == 1
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])
    ranged = [b for b in f.blob_gets() if b.header("Range")]
    assert len(ranged) == 1, "the interrupted blob was not asked for from where it stopped"
    assert not list((store_dir(capsa_env) / "tmp").glob("*.partial"))


def test_partial_download_is_resumed_by_the_next_pull(run_capsa, capsa_env, registry, fault):
    """A pull that failed mid-blob leaves the partial file; the next pull asks
    only for the rest."""
    f = fault(drop_once=True)

    def fail_after_drop():
        # The retry after the drop (0.5 s later) then finds the blob gone.
        deadline = time.monotonic() + PULL_TIMEOUT
        while not f.dropped and time.monotonic() < deadline:
            time.sleep(0.01)
        f.status = 404
    t = threading.Thread(target=fail_after_drop, daemon=True)
    t.start()
    r = pull(run_capsa, f.ref("test/busybox"))
    t.join(timeout=5)
    assert r.returncode != 0
    assert list((store_dir(capsa_env) / "tmp").glob("*.partial"))

    f.status = None
    seen = len(f.blob_gets())
    r = pull(run_capsa, f.ref("test/busybox"))
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f.ref("test/busybox:latest"), registry.pushed["busybox"])
    assert any(b.header("Range") for b in f.blob_gets()[seen:])


def test_localhost_and_insecure_registry_option(run_capsa, capsa_env, registry):
    """localhost is reached over plain HTTP like 127.0.0.1; --insecure-registry
    is accepted for a registry that needs no exception."""
    ref = f"localhost:{registry.port}/test/busybox"
    r = pull(run_capsa, ref, "--insecure-registry", registry.host, "-q")
    assert r.returncode == 0, r.stderr
    assert_pulled(run_capsa, capsa_env, f"{ref}:latest", registry.pushed["busybox"])
