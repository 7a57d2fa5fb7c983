"""Tests of the image test tooling itself (tests/lib): the layouts and
archives it writes are valid for other tools, the 'layers' image unpacks to
exactly its documented tree, and the local registry works and goes away."""

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import subprocess
import tarfile

import pytest

from lib import ociimage as oci
from lib import registry as registry_lib
from lib import testimages


def run(argv, timeout=120, **kwargs):
    proc = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, **kwargs)
    assert proc.returncode == 0, f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stderr}"
    return proc


def decompress(blob, media_type):
    if media_type.endswith("+gzip"):
        return gzip.decompress(blob)
    if media_type.endswith("+zstd"):
        return subprocess.run(["zstd", "-d", "-q", "-c"], input=blob, stdout=subprocess.PIPE, check=True).stdout
    return blob


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_manifest(layout, tag=testimages.TAG):
    desc = oci.tagged_descriptor(layout, tag)
    return desc, oci.read_json_blob(layout, desc["digest"])


# ---- ociimage: layers ----------------------------------------------------------------

def tar_members(data):
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]


def test_layer_entries_become_the_right_tar_members(tmp_path):
    binary_xattr = bytes(range(256))
    layer = oci.Layer([
        oci.file("/z/late.txt", "late\n"),
        oci.hardlink("a/link", "/z/late.txt"),
        oci.directory("z", 0o750, 7, 8),
        oci.directory("a"),
        oci.file("a/x", b"\x00\x01", 0o4711, 1000, 50, mtime=1234,
                 xattrs={"user.one": "1", "user.bin": binary_xattr}),
        oci.symlink("a/sym", "../z/late.txt"),
        oci.whiteout("/a/gone"),
        oci.opaque("a/"),
        oci.chardev("dev/null", 1, 3),
        oci.blockdev("dev/loop0", 7, 0),
        oci.fifo("a/pipe", 0o600),
    ], compression="none")
    members = tar_members(layer.tar)
    names = [m.name for m, _ in members]
    assert names == ["a", "a/.wh..wh..opq", "a/.wh.gone", "a/pipe", "a/sym", "a/x", "dev/loop0", "dev/null",
                     "z", "z/late.txt", "a/link"]
    by_name = {m.name: (m, data) for m, data in members}
    x, data = by_name["a/x"]
    assert x.isfile() and data == b"\x00\x01" and x.mode == 0o4711 and (x.uid, x.gid) == (1000, 50)
    assert x.mtime == 1234 and x.uname == "" and x.gname == ""
    assert x.pax_headers["SCHILY.xattr.user.one"] == "1"
    assert x.pax_headers["SCHILY.xattr.user.bin"].encode("utf-8", "surrogateescape") == binary_xattr
    assert by_name["z"][0].isdir() and by_name["z"][0].mode == 0o750 and by_name["z"][0].uid == 7
    assert by_name["a/sym"][0].issym() and by_name["a/sym"][0].linkname == "../z/late.txt"
    assert by_name["a/link"][0].islnk() and by_name["a/link"][0].linkname == "z/late.txt"
    null = by_name["dev/null"][0]
    assert null.ischr() and (null.devmajor, null.devminor) == (1, 3)
    assert by_name["dev/loop0"][0].isblk()
    assert by_name["a/pipe"][0].isfifo() and by_name["a/pipe"][0].mode == 0o600
    assert by_name["a/.wh.gone"][0].isfile() and by_name["a/.wh..wh..opq"][1] == b""
    assert all(m.mtime == oci.DEFAULT_MTIME for m, _ in members if m.name != "a/x")


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_layer_compression_and_digests(compression):
    entries = [oci.directory("d"), oci.file("d/f", os.urandom(1) * 5000)]
    layer = oci.Layer(entries, compression=compression)
    again = oci.Layer(list(reversed(entries)), compression=compression)
    assert layer.media_type == oci.MEDIA_TYPE_LAYER[compression]
    assert decompress(layer.blob, layer.media_type) == layer.tar
    assert layer.diff_id == sha256(layer.tar) and layer.digest == sha256(layer.blob)
    assert (again.digest, again.diff_id) == (layer.digest, layer.diff_id), "output must not depend on entry order"


def test_bad_paths_are_refused():
    for bad in ("", "/", "../x", "a/../../x", "a/.."):
        with pytest.raises(ValueError):
            oci.file(bad, "x")


def test_host_tree_walks_every_kind(tmp_path):
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f").write_bytes(b"data")
    os.chmod(src / "sub" / "f", 0o640)
    os.link(src / "sub" / "f", src / "hard")
    (src / "link").symlink_to("sub/f")
    os.mkfifo(src / "pipe")
    os.setxattr(src / "sub" / "f", "user.k", b"v")
    entries = oci.host_tree(src, "/opt/app", uid=0, gid=0, xattrs=True)
    got = {e.path: e for e in entries}
    assert set(got) == {"opt/app/sub", "opt/app/sub/f", "opt/app/hard", "opt/app/link", "opt/app/pipe"}
    assert got["opt/app/sub"].kind == "dir"
    f = got["opt/app/sub/f"] if got["opt/app/sub/f"].kind == "file" else got["opt/app/hard"]
    other = got["opt/app/hard"] if f is got["opt/app/sub/f"] else got["opt/app/sub/f"]
    assert f.kind == "file" and f.data == b"data" and f.mode == 0o640 and f.xattrs == {"user.k": b"v"}
    assert other.kind == "hardlink" and other.target == f.path
    assert got["opt/app/link"].kind == "symlink" and got["opt/app/link"].target == "sub/f"
    assert got["opt/app/pipe"].kind == "fifo"
    assert all(e.uid == 0 and e.mtime == oci.DEFAULT_MTIME for e in entries)
    # Packs and unpacks to the same content.
    out = tmp_path / "out"
    out.mkdir()
    with tarfile.open(fileobj=io.BytesIO(oci.build_tar(entries))) as tar:
        if hasattr(tarfile, "fully_trusted_filter"):
            tar.extractall(out, filter="fully_trusted")
        else:
            tar.extractall(out)
    assert (out / "opt/app/hard").read_bytes() == b"data"
    assert os.stat(out / "opt/app/hard").st_ino == os.stat(out / "opt/app/sub/f").st_ino


# ---- the standard images: layouts ---------------------------------------------------------

@pytest.mark.parametrize("name", ["busybox", "layers", "user"])
def test_layouts_are_accepted_by_umoci_and_skopeo(test_images, name):
    layout = test_images[name]
    out = run(["umoci", "stat", "--image", f"{layout}:{testimages.TAG}"]).stdout
    assert "LAYER" in out
    info = json.loads(run(["skopeo", "--insecure-policy", "inspect", f"oci:{layout}:{testimages.TAG}"]).stdout)
    desc, manifest = image_manifest(layout)
    assert info["Digest"] == desc["digest"]
    assert info["Architecture"] == "amd64" and info["Os"] == "linux"
    assert info["Layers"] == [layer["digest"] for layer in manifest["layers"]]


@pytest.mark.parametrize("name", ["busybox", "layers", "user"])
def test_layout_blobs_and_diff_ids_are_consistent(test_images, name):
    layout = test_images[name]
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    desc, manifest = image_manifest(layout)
    assert desc["mediaType"] == oci.MEDIA_TYPE_MANIFEST
    assert desc["size"] == len(oci.read_blob(layout, desc["digest"]))
    config = oci.read_json_blob(layout, manifest["config"]["digest"])
    diff_ids = []
    for layer in manifest["layers"]:
        blob = oci.read_blob(layout, layer["digest"])
        assert sha256(blob) == layer["digest"] and len(blob) == layer["size"]
        diff_ids.append(sha256(decompress(blob, layer["mediaType"])))
    assert config["rootfs"] == {"type": "layers", "diff_ids": diff_ids}
    assert len(config["history"]) == len(manifest["layers"])


def test_image_configs(test_images):
    def config_of(name):
        return oci.read_json_blob(test_images[name], image_manifest(test_images[name])[1]["config"]["digest"])

    busybox = config_of("busybox")
    assert busybox["config"] == {"Cmd": ["sh"], "Env": [f"PATH={testimages.DEFAULT_PATH}"]}
    user = config_of("user")["config"]
    assert user == testimages.USER_CONFIG
    assert user["User"] == "app" and user["WorkingDir"] == "/home/app/work"
    media_types = [layer["mediaType"] for layer in image_manifest(test_images["layers"])[1]["layers"]]
    assert media_types == [oci.MEDIA_TYPE_LAYER["gzip"]] * 3 + [oci.MEDIA_TYPE_LAYER["zstd"]]


def layer_members(layout, index):
    layer = image_manifest(layout)[1]["layers"][index]
    return {m.name: (m, data) for m, data in tar_members(decompress(oci.read_blob(layout, layer["digest"]),
                                                                    layer["mediaType"]))}


def test_busybox_base_layer(test_images):
    members = layer_members(test_images["busybox"], 0)
    busybox, data = members["bin/busybox"]
    assert data == testimages.BUSYBOX.read_bytes() and busybox.mode == 0o755
    for applet in ("sh", "ls", "cat", "id", "stat", "sha256sum"):
        assert members[f"bin/{applet}"][0].issym() and members[f"bin/{applet}"][0].linkname == "busybox"
    assert members["tmp"][0].mode == 0o1777
    home = members["home/app"][0]
    assert (home.uid, home.gid) == (1000, 1000)
    assert b"app:x:1000:1000:app:/home/app:/bin/sh" in members["etc/passwd"][1]
    assert b"staff:x:50:app" in members["etc/group"][1]
    work = layer_members(test_images["user"], 1)["home/app/work"][0]
    assert work.isdir() and (work.uid, work.gid) == (1000, 1000)


def test_multiarch_index(test_images):
    layout = test_images["multiarch"]
    desc = oci.tagged_descriptor(layout, testimages.TAG)
    assert desc["mediaType"] == oci.MEDIA_TYPE_INDEX
    index = oci.read_json_blob(layout, desc["digest"])
    platforms = [(m["platform"]["os"], m["platform"]["architecture"], m["platform"].get("variant"))
                 for m in index["manifests"]]
    assert platforms == [("linux", "amd64", None), ("linux", "arm64", "v8"), ("unknown", "unknown", None)]
    attestation = index["manifests"][2]
    assert attestation["annotations"]["vnd.docker.reference.type"] == "attestation-manifest"
    assert attestation["annotations"]["vnd.docker.reference.digest"] == index["manifests"][0]["digest"]
    for entry, arch in zip(index["manifests"][:2], ("amd64", "arm64")):
        manifest = oci.read_json_blob(layout, entry["digest"])
        config = oci.read_json_blob(layout, manifest["config"]["digest"])
        assert config["architecture"] == arch
        top = manifest["layers"][-1]
        files = {m.name: data for m, data in tar_members(decompress(oci.read_blob(layout, top["digest"]),
                                                                     top["mediaType"]))}
        assert files["arch.txt"] == testimages.MULTIARCH_CONTENT[arch].encode()
    # skopeo picks the platform asked for.
    for arch in ("amd64", "arm64"):
        info = json.loads(run(["skopeo", "--insecure-policy", "--override-arch", arch, "inspect",
                               f"oci:{layout}:{testimages.TAG}"]).stdout)
        assert info["Architecture"] == arch


def test_builds_are_deterministic_and_cached(tmp_path):
    first = testimages.build_all(tmp_path / "a")
    second = testimages.build_all(tmp_path / "b")
    for name in testimages.IMAGE_NAMES:
        assert (oci.tagged_descriptor(first[name], "latest")["digest"]
                == oci.tagged_descriptor(second[name], "latest")["digest"]), name
    stamp = (first["busybox"].parent / "complete").stat().st_ino
    again = testimages.build_all(tmp_path / "a")
    assert again == first and (again["busybox"].parent / "complete").stat().st_ino == stamp
    assert first["busybox"].parent.name == testimages.cache_key()
    other_busybox = tmp_path / "busybox-copy"
    other_busybox.write_bytes(testimages.BUSYBOX.read_bytes() + b"\0")
    assert testimages.cache_key(other_busybox) != testimages.cache_key()


# ---- the 'layers' image unpacks to its documented tree -------------------------------------------

@pytest.fixture(scope="module")
def layers_gzip_layout(test_images, tmp_path_factory):
    """The 'layers' image with its zstd layer recompressed as gzip: umoci 0.4
    (Debian 12) cannot read zstd layers. The tar content is unchanged."""
    out = tmp_path_factory.mktemp("layers-gzip") / "layout"
    run(["skopeo", "--insecure-policy", "copy", "--quiet", "--dest-compress", "--dest-compress-format", "gzip",
         f"oci:{test_images['layers']}:latest", f"oci:{out}:latest"])
    original = image_manifest(test_images["layers"])[1]
    converted = image_manifest(out)[1]
    assert (oci.read_json_blob(out, converted["config"]["digest"])["rootfs"]
            == oci.read_json_blob(test_images["layers"], original["config"]["digest"])["rootfs"])
    return out


def umoci_unpack(layout, bundle, rootless):
    argv = ["umoci", "unpack"] + (["--rootless"] if rootless else []) + ["--image", f"{layout}:latest", bundle]
    run(argv)
    return bundle / "rootfs"


def test_layers_image_unpacks_rootless_to_expected_tree(layers_gzip_layout, tmp_path):
    root = umoci_unpack(layers_gzip_layout, tmp_path / "bundle", rootless=True)
    # Rootless umoci cannot give files away or make devices: it leaves an empty
    # file where the device goes. Everything else must match exactly.
    expected = dict(testimages.LAYERS_EXPECTED)
    expected["/data/null"] = {"type": "file", "mode": 0o666, "uid": 0, "gid": 0, "content": b""}
    assert testimages.check_tree(root, expected, owners=False) == []
    assert (root / "expected.txt").read_text() == testimages.expected_txt(testimages.LAYERS_EXPECTED)


@pytest.mark.skipif(os.geteuid() != 0, reason="owners and devices need an unpack as root")
def test_layers_image_unpacks_as_root_to_expected_tree(layers_gzip_layout, tmp_path):
    root = umoci_unpack(layers_gzip_layout, tmp_path / "bundle", rootless=False)
    assert testimages.check_tree(root) == []
    # The in-guest check agrees on the same tree...
    script = testimages.guest_check_script()
    proc = subprocess.run(["busybox", "sh", "-c", script, "sh", str(root)], capture_output=True, text=True,
                          timeout=60)
    assert (proc.returncode, proc.stdout) == (0, "TREE OK\n"), proc.stderr
    # ...and both notice differences.
    os.remove(root / "data/keep.txt")
    os.chmod(root / "data/setuid", 0o755)
    os.lchown(root / "data/owned-by-app", 0, 0)
    (root / "data/zstd.txt").write_text("changed\n")
    (root / "data/delete-me.txt").write_text("back\n")
    os.remove(root / "data/hard-b")
    shutil.copy(root / "data/hard-a", root / "data/hard-b")
    os.remove(root / "data/dir-to-link")
    os.symlink("elsewhere", root / "data/dir-to-link")
    (root / "data/extra").write_text("not expected\n")
    problems = testimages.check_tree(root)
    for path in ("/data/keep.txt", "/data/setuid", "/data/owned-by-app", "/data/zstd.txt", "/data/delete-me.txt",
                 "/data/hard-b", "/data/dir-to-link", "/data/extra"):
        assert any(p.startswith(path + ":") for p in problems), (path, problems)
    proc = subprocess.run(["busybox", "sh", "-c", script, "sh", str(root)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1 and "TREE OK" not in proc.stdout
    for path in ("/data/keep.txt", "/data/setuid", "/data/owned-by-app", "/data/zstd.txt", "/data/delete-me.txt",
                 "/data/hard-b", "/data/dir-to-link"):
        assert f"MISMATCH {path}:" in proc.stdout, (path, proc.stdout)


# ---- docker save archives ---------------------------------------------------------------

@pytest.mark.parametrize("compressed", [False, True])
def test_docker_save_archive_structure(test_images, tmp_path, compressed):
    path = testimages.docker_save_archive(testimages.default_cache_dir(), gzip=compressed)
    data = path.read_bytes()
    if compressed:
        assert data[:2] == b"\x1f\x8b"
        data = gzip.decompress(data)
        assert data == testimages.docker_save_archive(testimages.default_cache_dir()).read_bytes()
    files = {m.name: d for m, d in tar_members(data)}
    manifest = json.loads(files["manifest.json"])
    assert len(manifest) == 1 and manifest[0]["RepoTags"] == [testimages.DOCKER_SAVE_TAG]
    config_name = manifest[0]["Config"]
    assert config_name == hashlib.sha256(files[config_name]).hexdigest() + ".json"
    config = json.loads(files[config_name])
    layers = manifest[0]["Layers"]
    assert [sha256(files[p]) for p in layers] == config["rootfs"]["diff_ids"]
    assert config["config"] == testimages.BUSYBOX_CONFIG and config["architecture"] == "amd64"
    top_id = layers[-1].split("/")[0]
    assert json.loads(files["repositories"]) == {"capsa-test/busybox": {"saved": top_id}}
    assert files[f"{top_id}/VERSION"] == b"1.0" and json.loads(files[f"{top_id}/json"])["id"] == top_id
    # The same layer as the OCI busybox image, uncompressed.
    base = image_manifest(test_images["busybox"])[1]["layers"][0]
    base_tar = gzip.decompress(oci.read_blob(test_images["busybox"], base["digest"]))
    assert sha256(files[layers[0]]) == sha256(base_tar)
    # skopeo reads it (only uncompressed archives).
    plain = tmp_path / "saved.tar"
    plain.write_bytes(data)
    info = json.loads(run(["skopeo", "--insecure-policy", "inspect",
                           f"docker-archive:{plain}:{testimages.DOCKER_SAVE_TAG}"]).stdout)
    assert info["Env"] == testimages.BUSYBOX_CONFIG["Env"]


# ---- registry --------------------------------------------------------------------------

def test_registry_serves_pushed_images(registry, test_images):
    for name, ref in testimages.REGISTRY_REFS.items():
        layout_digest = oci.tagged_descriptor(test_images[name], testimages.TAG)["digest"]
        assert registry.pushed[name] == layout_digest, name
        raw = run(["skopeo", "--insecure-policy", "inspect", "--raw", "--tls-verify=false",
                   f"docker://{registry.ref(ref)}"]).stdout
        assert sha256(raw.encode()) == layout_digest, f"{name}: the registry changed the manifest"
    info = json.loads(run(["skopeo", "--insecure-policy", "inspect", "--tls-verify=false",
                           f"docker://{registry.ref('test/user:latest')}"]).stdout)
    assert info["Env"] == testimages.USER_CONFIG["Env"]
    # Every platform of the index was pushed, the attestation too.
    status, headers, body = registry.manifest("test/multiarch", "latest")
    assert status == 200 and headers["Content-Type"] == oci.MEDIA_TYPE_INDEX
    for entry in json.loads(body)["manifests"]:
        status, _, child = registry.manifest("test/multiarch", entry["digest"])
        assert status == 200 and sha256(child) == entry["digest"]
    arm = json.loads(run(["skopeo", "--insecure-policy", "--override-arch", "arm64", "inspect",
                          "--tls-verify=false", f"docker://{registry.ref('test/multiarch:latest')}"]).stdout)
    assert arm["Architecture"] == "arm64"
    status, _, _ = registry.manifest("test/busybox", "no-such-tag")
    assert status == 404


def port_open(port):
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_registry_stops_even_when_the_code_using_it_fails():
    with pytest.raises(RuntimeError, match="test failure"):
        with registry_lib.Registry() as reg:
            proc, port, workdir = reg.proc, reg.port, reg.workdir
            assert port_open(port)
            raise RuntimeError("test failure")
    assert proc.poll() is not None
    assert not port_open(port)
    assert not workdir.exists()


def test_registry_reports_a_registry_that_cannot_start(tmp_path):
    broken = tmp_path / "registry"
    broken.write_text("#!/bin/sh\necho 'cannot start: broken on purpose' >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.raises(registry_lib.RegistryError, match="broken on purpose"):
        registry_lib.Registry(binary=str(broken)).start()
    hanging = tmp_path / "hanging"
    hanging.write_text("#!/bin/sh\nexec sleep 60\n")
    hanging.chmod(0o755)
    with pytest.raises(registry_lib.RegistryError, match="did not answer"):
        registry_lib.Registry(binary=str(hanging), start_timeout=1).start()


# ---- fixtures other tests rely on ------------------------------------------------------------

def test_capsa_env_is_isolated(capsa_env):
    for var in ("XDG_DATA_HOME", "XDG_CACHE_HOME", "DOCKER_CONFIG"):
        path = capsa_env[var]
        assert os.path.isdir(path) and os.listdir(path) == [] and path != os.environ.get(var)
    assert capsa_env is not os.environ and capsa_env["PATH"] == os.environ["PATH"]


def test_run_capsa_uses_the_isolated_environment(run_capsa, capsa_env):
    proc = run_capsa(["--help"])
    assert proc.returncode == 0 and "Usage" in proc.stdout, proc.stderr
    assert isinstance(proc.stdout, str)
