"""Images run as docker runs them: pulled from a registry, loaded from a
docker save archive or read from an OCI layout, with their layers, users,
working directory, environment, entrypoint and command honoured."""

import pytest

from conftest import CAPSA_FAILURE


@pytest.fixture(scope="session")
def registry_ref(image_registry):
    """localhost:PORT/test/NAME:latest"""
    port = image_registry.host.rsplit(":", 1)[1]
    return lambda name: f"localhost:{port}/test/{name}:latest"


def lines(result):
    return result.stdout.splitlines()


def test_run_image_from_registry(capsa_image, registry_ref):
    result = capsa_image("run", "-q", registry_ref("busybox"), "echo", "hi")
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"hi\n", result
    listed = capsa_image("images")
    assert registry_ref("busybox") in listed.stdout, listed


def test_image_cmd_is_the_default_command(capsa_image, registry_ref):
    # busybox's Cmd is ["sh"]; with stdin at /dev/null it exits at once.
    result = capsa_image("run", "-q", registry_ref("busybox"))
    assert result.returncode == 0, result


def test_layer_whiteouts_inside_the_guest(capsa_image, registry_ref):
    from lib import testimages
    result = capsa_image("run", "-q", registry_ref("layers"), "sh", "-c", testimages.guest_check_script())
    assert result.returncode == 0, result
    assert lines(result)[-1] == "TREE OK", result


def test_user_workdir_and_env_from_the_image(capsa_image, registry_ref):
    from lib import testimages
    result = capsa_image("run", "-q", registry_ref("user"))
    assert result.returncode == 0, result
    out = lines(result)
    assert out[0] == testimages.USER_OUTPUT_FIRST_LINE, result
    assert out[1].startswith("uid=1000(app) gid=1000(app) groups="), result
    assert "50(staff)" in out[1], result
    assert out[-1] == testimages.USER_OUTPUT_LAST_LINE, result


def test_user_workdir_and_env_overridden(capsa_image, registry_ref):
    result = capsa_image("run", "-q", "-u", "0", "-w", "/tmp", "-e", "GREETING=overridden",
                         registry_ref("user"))
    assert result.returncode == 0, result
    out = lines(result)
    assert out[0] == "overridden", result
    assert out[1].startswith("uid=0(root) gid=0(root)"), result
    assert out[-1] == "/tmp", result


def test_numeric_user_and_group(capsa_image, registry_ref):
    result = capsa_image("run", "-q", "-u", "1000:50", registry_ref("busybox"), "sh", "-c", "id -u; id -g; echo $HOME")
    assert result.returncode == 0, result
    assert lines(result) == ["1000", "50", "/home/app"], result


def test_command_replaces_cmd_after_entrypoint(capsa_image, registry_ref):
    # The image's Entrypoint is ["/bin/sh", "-c"]: the command is its script.
    result = capsa_image("run", "-q", registry_ref("user"), "echo from-cmd; whoami")
    assert result.returncode == 0, result
    assert lines(result) == ["from-cmd", "app"], result


def test_entrypoint_override(capsa_image, registry_ref):
    result = capsa_image("run", "-q", "--entrypoint", "/bin/echo", registry_ref("user"), "a", "b")
    assert result.returncode == 0, result
    assert result.stdout_bytes == b"a b\n", result


def test_unknown_user_is_a_clear_error(capsa_image, registry_ref):
    result = capsa_image("run", "-q", "-u", "nosuchuser", registry_ref("busybox"), "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert "unable to find user nosuchuser" in result.stderr, result


def test_load_docker_save_archive_then_run(capsa_image, test_images):
    from lib import testimages
    archive = testimages.docker_save_archive(testimages.default_cache_dir(), gzip=True)
    loaded = capsa_image("load", "-i", archive)
    assert loaded.returncode == 0, loaded
    assert testimages.DOCKER_SAVE_TAG in loaded.stdout, loaded
    result = capsa_image("run", testimages.DOCKER_SAVE_TAG, "grep", "^app:", "/etc/passwd")
    assert result.returncode == 0, result
    assert result.stdout.startswith("app:x:1000:1000:"), result


def test_run_from_oci_layout(capsa_image, test_images):
    result = capsa_image("run", "-q", f"oci:{test_images['busybox']}:latest", "cat", "/etc/group")
    assert result.returncode == 0, result
    assert "staff:x:50:app" in result.stdout, result
