"""Writes OCI images for tests: layer tars built from a list of entries, OCI
image layouts (one image, or a multi-platform index) and classic `docker save`
archives.

Standard library only; zstd layers go through the `zstd` command. The output
is deterministic (entries sorted, fixed mtimes unless given, empty owner
names, fixed compressor headers), so the same inputs always give the same
digests.

    base = Layer([directory("etc"), file("etc/motd", "hi\\n")])
    top = Layer([whiteout("etc/motd"), symlink("etc/alias", "hostname")], compression="zstd")
    digest = write_layout(dir, [base, top], {"Cmd": ["sh"]}, tag="latest")

Paths may be written with or without a leading "/"; inside the tar they are
relative ("etc/motd"). Entries of a layer are written parents first, and in
each directory whiteouts (".wh.NAME", ".wh..wh..opq") before the other
entries, as the OCI layer spec recommends; hard links come last so their
targets always precede them.
"""

import gzip as _gzip
import hashlib
import io
import json
import os
import posixpath
import stat
import subprocess
import tarfile

# 2020-09-13T12:26:40Z: the mtime of every entry that does not give one.
DEFAULT_MTIME = 1_600_000_000
CREATED = "2020-09-13T12:26:40Z"

OCI_LAYOUT_VERSION = "1.0.0"
REF_NAME_ANNOTATION = "org.opencontainers.image.ref.name"

MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_LAYER = {
    "none": "application/vnd.oci.image.layer.v1.tar",
    "gzip": "application/vnd.oci.image.layer.v1.tar+gzip",
    "zstd": "application/vnd.oci.image.layer.v1.tar+zstd",
}
MEDIA_TYPE_IN_TOTO = "application/vnd.in-toto+json"

WHITEOUT_PREFIX = ".wh."
OPAQUE_NAME = ".wh..wh..opq"


# ---- entries -----------------------------------------------------------------

class Entry:
    """One member of a layer tar. kind is file, dir, symlink, hardlink, char,
    block or fifo; whiteouts and opaque markers are empty files."""

    __slots__ = ("kind", "path", "data", "mode", "uid", "gid", "mtime", "target", "major", "minor", "xattrs")

    def __init__(self, kind, path, data=b"", mode=0o644, uid=0, gid=0, mtime=None, target=None,
                 major=0, minor=0, xattrs=None):
        self.kind = kind
        self.path = normalize_path(path)
        self.data = data.encode() if isinstance(data, str) else bytes(data)
        self.mode = mode
        self.uid = uid
        self.gid = gid
        self.mtime = DEFAULT_MTIME if mtime is None else int(mtime)
        self.target = target
        self.major = major
        self.minor = minor
        self.xattrs = dict(xattrs or {})

    def __repr__(self):
        return f"<Entry {self.kind} {self.path}>"


def normalize_path(path):
    """'/a//b/' -> 'a/b'. Rejects paths that leave the root."""
    raw = str(path)
    rel = posixpath.normpath("/" + raw.lstrip("/")).lstrip("/")
    if not rel or ".." in raw.split("/"):
        raise ValueError(f"bad path for a layer entry: {path!r}")
    return rel


def file(path, data=b"", mode=0o644, uid=0, gid=0, mtime=None, xattrs=None):
    """A regular file; data is bytes or str (UTF-8). xattrs: {name: bytes or str},
    written as pax SCHILY.xattr.NAME records."""
    return Entry("file", path, data, mode, uid, gid, mtime, xattrs=xattrs)


def directory(path, mode=0o755, uid=0, gid=0, mtime=None, xattrs=None):
    return Entry("dir", path, b"", mode, uid, gid, mtime, xattrs=xattrs)


def symlink(path, target, uid=0, gid=0, mtime=None):
    return Entry("symlink", path, b"", 0o777, uid, gid, mtime, target=target)


def hardlink(path, target, mtime=None):
    """A hard link to target, an earlier entry of the same layer (or a lower
    layer's file)."""
    return Entry("hardlink", path, b"", 0o644, 0, 0, mtime, target=normalize_path(target))


def whiteout(path, mtime=None):
    """Deletes path (and everything under it) of the lower layers: DIR/.wh.NAME."""
    rel = normalize_path(path)
    parent, name = posixpath.split(rel)
    return Entry("file", posixpath.join(parent, WHITEOUT_PREFIX + name), b"", 0o644, 0, 0, mtime)


def opaque(dir_path, mtime=None):
    """Hides every lower-layer child of dir_path; children in this layer stay:
    DIR/.wh..wh..opq."""
    return Entry("file", posixpath.join(normalize_path(dir_path), OPAQUE_NAME), b"", 0o644, 0, 0, mtime)


def chardev(path, major, minor, mode=0o666, uid=0, gid=0, mtime=None):
    return Entry("char", path, b"", mode, uid, gid, mtime, major=major, minor=minor)


def blockdev(path, major, minor, mode=0o660, uid=0, gid=0, mtime=None):
    return Entry("block", path, b"", mode, uid, gid, mtime, major=major, minor=minor)


def fifo(path, mode=0o644, uid=0, gid=0, mtime=None):
    return Entry("fifo", path, b"", mode, uid, gid, mtime)


def host_tree(host_dir, dest="/", uid=None, gid=None, keep_mtime=False, xattrs=False):
    """Entries for everything under host_dir, placed under dest (dest itself is
    not an entry). Owners are the host's unless uid/gid are given; mtimes are
    DEFAULT_MTIME unless keep_mtime. Files with several links on the host
    become one file and hard links to it. Sockets are skipped. With xattrs,
    the host files' extended attributes are copied too."""
    entries = []
    first_path_of_inode = {}

    def walk(host, rel):
        with os.scandir(host) as it:
            children = sorted(it, key=lambda d: d.name)
        for child in children:
            path = posixpath.join(dest, rel, child.name) if rel else posixpath.join(dest, child.name)
            st = os.lstat(child.path)
            owner = dict(uid=st.st_uid if uid is None else uid, gid=st.st_gid if gid is None else gid,
                         mtime=st.st_mtime if keep_mtime else None)
            attrs = _host_xattrs(child.path) if xattrs and not stat.S_ISLNK(st.st_mode) else None
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISDIR(st.st_mode):
                entries.append(directory(path, mode, xattrs=attrs, **owner))
                walk(child.path, posixpath.join(rel, child.name) if rel else child.name)
            elif stat.S_ISREG(st.st_mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in first_path_of_inode:
                    entries.append(hardlink(path, first_path_of_inode[key], mtime=owner["mtime"]))
                    continue
                first_path_of_inode[key] = path
                with open(child.path, "rb") as f:
                    entries.append(file(path, f.read(), mode, xattrs=attrs, **owner))
            elif stat.S_ISLNK(st.st_mode):
                entries.append(symlink(path, os.readlink(child.path), **owner))
            elif stat.S_ISCHR(st.st_mode):
                entries.append(chardev(path, os.major(st.st_rdev), os.minor(st.st_rdev), mode, **owner))
            elif stat.S_ISBLK(st.st_mode):
                entries.append(blockdev(path, os.major(st.st_rdev), os.minor(st.st_rdev), mode, **owner))
            elif stat.S_ISFIFO(st.st_mode):
                entries.append(fifo(path, mode, **owner))

    walk(os.fspath(host_dir), "")
    return entries


def _host_xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return None
    return {n: os.getxattr(path, n, follow_symlinks=False) for n in sorted(names)} or None


# The builtin-like names the layer entry list is usually written with.
dir = directory  # noqa: A001  (shadows the builtin inside this module only)
add_host_tree = host_tree


# ---- layers --------------------------------------------------------------------

def _sort_key(entry):
    # Parents before children; in a directory, whiteouts before the rest;
    # hard links after everything so their targets come first.
    parts = entry.path.split("/")
    key = [(1, p) for p in parts[:-1]]
    key.append((0 if parts[-1].startswith(WHITEOUT_PREFIX) else 1, parts[-1]))
    return (entry.kind == "hardlink", key)


def _tarinfo(entry):
    ti = tarfile.TarInfo(entry.path)
    ti.mtime = entry.mtime
    ti.uid, ti.gid = entry.uid, entry.gid
    ti.uname = ti.gname = ""
    ti.mode = entry.mode & 0o7777
    if entry.kind == "file":
        ti.type = tarfile.REGTYPE
        ti.size = len(entry.data)
    elif entry.kind == "dir":
        ti.type = tarfile.DIRTYPE
    elif entry.kind == "symlink":
        ti.type = tarfile.SYMTYPE
        ti.linkname = entry.target
    elif entry.kind == "hardlink":
        ti.type = tarfile.LNKTYPE
        ti.linkname = entry.target
    elif entry.kind in ("char", "block"):
        ti.type = tarfile.CHRTYPE if entry.kind == "char" else tarfile.BLKTYPE
        ti.devmajor, ti.devminor = entry.major, entry.minor
    elif entry.kind == "fifo":
        ti.type = tarfile.FIFOTYPE
    else:
        raise ValueError(f"unknown entry kind {entry.kind!r}")
    if entry.xattrs:
        # tarfile writes str pax values; binary ones travel as surrogate escapes
        # and are marked hdrcharset=BINARY.
        ti.pax_headers = {
            "SCHILY.xattr." + name: (value.decode("utf-8", "surrogateescape") if isinstance(value, bytes)
                                     else str(value))
            for name, value in sorted(entry.xattrs.items())}
    return ti


def build_tar(entries):
    """The uncompressed layer tar (pax format) of entries."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for entry in sorted(entries, key=_sort_key):
            data = io.BytesIO(entry.data) if entry.kind == "file" else None
            tar.addfile(_tarinfo(entry), data)
    return buf.getvalue()


def compress(data, compression):
    if compression in (None, "none"):
        return data
    if compression == "gzip":
        return _gzip.compress(data, compresslevel=6, mtime=0)
    if compression == "zstd":
        proc = subprocess.run(["zstd", "-q", "-c", "-3", "-T1"], input=data, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"zstd failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}")
        return proc.stdout
    raise ValueError(f"unknown compression {compression!r} (none, gzip or zstd)")


def sha256_digest(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Layer:
    """A layer: its entries and compression ("none", "gzip" or "zstd"). The tar
    and the blob are built once, when first needed. comment becomes the
    history's created_by."""

    def __init__(self, entries, compression="gzip", comment=None):
        if compression not in MEDIA_TYPE_LAYER:
            raise ValueError(f"unknown compression {compression!r} (none, gzip or zstd)")
        self.entries = list(entries)
        self.compression = compression
        self.comment = comment
        self._tar = None
        self._blob = None

    @property
    def tar(self):
        if self._tar is None:
            self._tar = build_tar(self.entries)
        return self._tar

    @property
    def blob(self):
        if self._blob is None:
            self._blob = compress(self.tar, self.compression)
        return self._blob

    @property
    def diff_id(self):
        return sha256_digest(self.tar)

    @property
    def digest(self):
        return sha256_digest(self.blob)

    @property
    def media_type(self):
        return MEDIA_TYPE_LAYER[self.compression]

    def descriptor(self):
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.blob)}


def _as_layer(layer):
    return layer if isinstance(layer, Layer) else Layer(layer)


# ---- image configs and JSON blobs ----------------------------------------------

def canonical_json(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _platform(platform):
    os_name, arch, *rest = platform
    out = {"architecture": arch, "os": os_name}
    if rest and rest[0]:
        out["variant"] = rest[0]
    return out


def image_config(layers, config, platform=("linux", "amd64")):
    """The image config JSON object: config is the runtime part (Entrypoint,
    Cmd, Env, WorkingDir, User, ExposedPorts, ...)."""
    layers = [_as_layer(layer) for layer in layers]
    out = {
        "created": CREATED,
        "config": dict(config or {}),
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": CREATED, "created_by": layer.comment or f"layer {i}"}
                    for i, layer in enumerate(layers)],
    }
    out.update(_platform(platform))
    return out


def _write_blob(layout_dir, data, media_type):
    digest = sha256_digest(data)
    blob_dir = os.path.join(layout_dir, "blobs", "sha256")
    os.makedirs(blob_dir, exist_ok=True)
    path = os.path.join(blob_dir, digest.split(":", 1)[1])
    if not os.path.exists(path):
        tmp = path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    return {"mediaType": media_type, "digest": digest, "size": len(data)}


def _write_image(layout_dir, layers, config, platform):
    """Writes layers, config and manifest blobs; returns the manifest descriptor."""
    layers = [_as_layer(layer) for layer in layers]
    config_desc = _write_blob(layout_dir, canonical_json(image_config(layers, config, platform)),
                              MEDIA_TYPE_CONFIG)
    layer_descs = [_write_blob(layout_dir, layer.blob, layer.media_type) for layer in layers]
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST, "config": config_desc,
                "layers": layer_descs}
    desc = _write_blob(layout_dir, canonical_json(manifest), MEDIA_TYPE_MANIFEST)
    desc["platform"] = _platform(platform)
    return desc


def _add_to_index(layout_dir, desc, tag):
    """Names desc tag in index.json (replacing an earlier image of that tag)."""
    os.makedirs(layout_dir, exist_ok=True)
    with open(os.path.join(layout_dir, "oci-layout"), "wb") as f:
        f.write(canonical_json({"imageLayoutVersion": OCI_LAYOUT_VERSION}))
    index_path = os.path.join(layout_dir, "index.json")
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": []}
    if os.path.exists(index_path):
        with open(index_path, "rb") as f:
            index = json.load(f)
    index["manifests"] = [m for m in index.get("manifests", [])
                          if (m.get("annotations") or {}).get(REF_NAME_ANNOTATION) != tag]
    desc = dict(desc)
    desc["annotations"] = {REF_NAME_ANNOTATION: tag}
    index["manifests"].append(desc)
    tmp = index_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(canonical_json(index))
    os.replace(tmp, index_path)


def write_layout(layout_dir, layers, config, tag="latest", platform=("linux", "amd64")):
    """Writes one image into the OCI image layout layout_dir (created, or added
    to: other tags stay) under tag. layers are Layer objects or entry lists
    (gzip). Returns the manifest digest."""
    desc = _write_image(layout_dir, layers, config, platform)
    del desc["platform"]   # index.json entries of single images carry none, like skopeo's
    _add_to_index(layout_dir, desc, tag)
    return desc["digest"]


def _attestation(layout_dir, subject_digest):
    """An attestation manifest like BuildKit's (platform unknown/unknown) for
    the image manifest subject_digest."""
    statement = canonical_json({
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://spdx.dev/Document",
        "subject": [{"name": "capsa-test", "digest": {"sha256": subject_digest.split(":", 1)[1]}}],
        "predicate": {"spdxVersion": "SPDX-2.3", "name": "capsa-test", "packages": []},
    })
    layer_desc = _write_blob(layout_dir, statement, MEDIA_TYPE_IN_TOTO)
    layer_desc["annotations"] = {"in-toto.io/predicate-type": "https://spdx.dev/Document"}
    config = {"architecture": "unknown", "os": "unknown", "config": {},
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = _write_blob(layout_dir, canonical_json(config), MEDIA_TYPE_CONFIG)
    manifest = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_MANIFEST, "config": config_desc,
                "layers": [layer_desc]}
    desc = _write_blob(layout_dir, canonical_json(manifest), MEDIA_TYPE_MANIFEST)
    desc["platform"] = {"architecture": "unknown", "os": "unknown"}
    desc["annotations"] = {"vnd.docker.reference.digest": subject_digest,
                           "vnd.docker.reference.type": "attestation-manifest"}
    return desc


def write_index_layout(layout_dir, images, tag="latest", attestation=True):
    """Writes a multi-platform image: images is a list of (platform, layers,
    config), platform as ("linux", "arm64") or ("linux", "arm64", "v8").
    With attestation, an attestation manifest (platform unknown/unknown) for
    the first image is added, as `docker buildx` does. Returns the index
    digest."""
    descs = [_write_image(layout_dir, layers, config, platform) for platform, layers, config in images]
    if attestation and descs:
        descs.append(_attestation(layout_dir, descs[0]["digest"]))
    index = {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": descs}
    desc = _write_blob(layout_dir, canonical_json(index), MEDIA_TYPE_INDEX)
    _add_to_index(layout_dir, desc, tag)
    return desc["digest"]


# ---- reading layouts back (for checks) -----------------------------------------

def read_blob(layout_dir, digest):
    algo, hexdigest = digest.split(":", 1)
    with open(os.path.join(layout_dir, "blobs", algo, hexdigest), "rb") as f:
        return f.read()


def read_json_blob(layout_dir, digest):
    return json.loads(read_blob(layout_dir, digest))


def tagged_descriptor(layout_dir, tag):
    """The index.json descriptor named tag."""
    with open(os.path.join(layout_dir, "index.json"), "rb") as f:
        index = json.load(f)
    for desc in index.get("manifests", []):
        if (desc.get("annotations") or {}).get(REF_NAME_ANNOTATION) == tag:
            return desc
    raise KeyError(f"no image tagged {tag!r} in {layout_dir}")


# ---- docker save archives ----------------------------------------------------------

def _split_repo_tag(ref):
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1:]
    return ref, "latest"


def write_docker_save(path, layers, config, repo_tags, gzip=False, platform=("linux", "amd64")):
    """Writes a classic `docker save` archive (manifest.json, <config sha>.json,
    <layer id>/layer.tar + VERSION + json, repositories) of one image named
    repo_tags (e.g. ["capsa-test/busybox:saved"]). Layers are stored
    uncompressed, as docker does; gzip compresses the whole archive (as
    `docker save | gzip`). Returns the image id (the config digest)."""
    layers = [_as_layer(layer) for layer in layers]
    config_json = canonical_json(image_config(layers, config, platform))
    config_digest = sha256_digest(config_json)
    config_name = config_digest.split(":", 1)[1] + ".json"

    members = []   # (name, data or None for a directory)
    layer_paths = []
    parent = ""
    for layer in layers:
        # Docker's v1 layer ids are chained: they depend on every layer below.
        layer_id = hashlib.sha256(f"{parent}\n{layer.diff_id}".encode()).hexdigest()
        v1 = {"id": layer_id, "created": CREATED, "container_config": {}}
        if parent:
            v1["parent"] = parent
        members += [(layer_id, None), (f"{layer_id}/VERSION", b"1.0"),
                    (f"{layer_id}/json", canonical_json(v1)), (f"{layer_id}/layer.tar", layer.tar)]
        layer_paths.append(f"{layer_id}/layer.tar")
        parent = layer_id
    members.append((config_name, config_json))
    members.append(("manifest.json", canonical_json(
        [{"Config": config_name, "RepoTags": list(repo_tags), "Layers": layer_paths}])))
    repositories = {}
    for ref in repo_tags:
        repo, tag = _split_repo_tag(ref)
        repositories.setdefault(repo, {})[tag] = parent
    if repositories:
        members.append(("repositories", canonical_json(repositories)))

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = DEFAULT_MTIME
            ti.uname = ti.gname = ""
            if data is None:
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(ti)
            else:
                ti.mode, ti.size = 0o644, len(data)
                tar.addfile(ti, io.BytesIO(data))
    data = buf.getvalue()
    if gzip:
        data = _gzip.compress(data, compresslevel=6, mtime=0)
    tmp = os.fspath(path) + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
    return config_digest
