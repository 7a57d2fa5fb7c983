#!/usr/bin/env python3
"""Writes seed inputs for fuzz_oci_parsers into a directory: for each
parser (picked by the first byte), a few well-formed inputs as registries
and users produce them, so the fuzzer starts past the syntax checks."""
import json
import os
import sys

REFERENCE, MANIFEST, IMAGE_CONFIG, WWW_AUTH, PLATFORM = range(5)


def digest(ch):
    return "sha256:" + ch * 64


def desc(media_type, ch, size, platform=None):
    d = {"mediaType": media_type, "digest": digest(ch), "size": size}
    if platform:
        d["platform"] = platform
    return d


OCI_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": desc("application/vnd.oci.image.config.v1+json", "c", 1469),
    "layers": [desc("application/vnd.oci.image.layer.v1.tar+gzip", "1", 3623807),
               desc("application/vnd.oci.image.layer.v1.tar+zstd", "2", 100)],
    "annotations": {"org.opencontainers.image.created": "2024-05-01T00:00:00Z"},
}

DOCKER_MANIFEST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    "config": desc("application/vnd.docker.container.image.v1+json", "d", 1457),
    "layers": [desc("application/vnd.docker.image.rootfs.diff.tar.gzip", "e", 2152262)],
}

OCI_INDEX = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": [
        desc("application/vnd.oci.image.manifest.v1+json", "a", 1234, {"architecture": "amd64", "os": "linux"}),
        desc("application/vnd.oci.image.manifest.v1+json", "b", 1235,
             {"architecture": "arm64", "os": "linux", "variant": "v8"}),
        desc("application/vnd.oci.image.manifest.v1+json", "f", 566, {"architecture": "unknown", "os": "unknown"}),
    ],
}

DOCKER_LIST = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.docker.distribution.manifest.list.v2+json",
    "manifests": [
        desc("application/vnd.docker.distribution.manifest.v2+json", "1", 527,
             {"architecture": "arm", "os": "linux", "variant": "v7"}),
        desc("application/vnd.docker.distribution.manifest.v2+json", "2", 527,
             {"architecture": "amd64", "os": "linux"}),
    ],
}

SCHEMA1 = {"schemaVersion": 1, "name": "x", "tag": "latest", "fsLayers": [{"blobSum": digest("1")}]}

IMAGE_CONFIG_DOC = {
    "architecture": "amd64",
    "os": "linux",
    "config": {
        "ExposedPorts": {"80/tcp": {}},
        "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "NGINX_VERSION=1.27.0"],
        "Entrypoint": ["/docker-entrypoint.sh"],
        "Cmd": ["nginx", "-g", "daemon off;"],
        "WorkingDir": "/usr/share/nginx",
        "User": "101:101",
    },
    "rootfs": {"type": "layers", "diff_ids": [digest("1"), digest("2")]},
}

SEEDS = {
    "ref_short": (REFERENCE, "busybox"),
    "ref_tag": (REFERENCE, "nginx:1.27"),
    "ref_registry": (REFERENCE, "localhost:5000/x/y:tag"),
    "ref_digest": (REFERENCE, "ghcr.io/org/app:v1@" + digest("a")),
    "ref_ipv6": (REFERENCE, "[::1]:5000/a.b_c__d-e/app"),
    "manifest_oci": (MANIFEST, json.dumps(OCI_MANIFEST, indent=2)),
    "manifest_docker": (MANIFEST, json.dumps(DOCKER_MANIFEST)),
    "manifest_index": (MANIFEST, json.dumps(OCI_INDEX)),
    "manifest_list": (MANIFEST, json.dumps(DOCKER_LIST)),
    "manifest_schema1": (MANIFEST, json.dumps(SCHEMA1)),
    "config_nginx": (IMAGE_CONFIG, json.dumps(IMAGE_CONFIG_DOC, indent=1)),
    "config_busybox": (IMAGE_CONFIG, json.dumps({"os": "linux", "config": {"Cmd": ["sh"], "Entrypoint": None}})),
    "auth_docker": (WWW_AUTH, 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",'
                              'scope="repository:library/busybox:pull"'),
    "auth_basic": (WWW_AUTH, 'Basic realm="Registry Realm"'),
    "auth_both": (WWW_AUTH, 'Basic realm=x, Bearer realm="https://ghcr.io/token",scope="a:\\"b\\"",x=y'),
    "platform": (PLATFORM, "linux/arm64/v8"),
}


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "corpus"
    os.makedirs(out, exist_ok=True)
    for name, (parser, text) in SEEDS.items():
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(bytes([parser]) + text.encode())


if __name__ == "__main__":
    main()
