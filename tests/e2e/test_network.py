"""Networking: the user-mode NAT (guest address, route and DNS), published
ports (-p, -P), traffic from the guest to the host through the gateway,
DNS answered by a test server (CAPSA_DNS_SERVER), UDP both ways, the
deny_private egress policy, and --network none.

Boots are expensive under emulation: the module boots three VMs, one after
the other. Two are detached and shared by several tests (one with the
default policy, from an image, one with --egress deny_private), the last
runs in the foreground without a network."""

import http.server
import os
import secrets
import shutil
import socket
import struct
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import CAPSA_FAILURE, RUN_TIMEOUT, Result

GATEWAY = "10.0.2.2"
DNS_NAME = "capsa-test.example"
DNS_ADDRESS = "192.0.2.77"
GUEST_HTTP_PORT = 8080   # the user test image exposes 8080/tcp
GUEST_UDP_PORT = 9000
GUEST_TOOLS = "/opt/nettools"

# A static UDP tool for the guest (busybox's nc has no UDP):
#   udpecho PORT              answer each datagram with "echo:" + its data
#   udpecho HOST PORT TEXT    send TEXT, print the answer (exit 1 after 5 s without)
UDPECHO_C = r"""
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char buf[2048];
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	if (argc == 2) {
		a.sin_port = htons(atoi(argv[1]));
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
			return perror("bind"), 1;
		for (;;) {
			len = sizeof(a);
			ssize_t n = recvfrom(fd, buf + 5, sizeof(buf) - 5, 0, (struct sockaddr *)&a, &len);
			if (n < 0)
				continue;
			memcpy(buf, "echo:", 5);
			sendto(fd, buf, n + 5, 0, (struct sockaddr *)&a, len);
		}
	}
	if (argc != 4)
		return 2;
	a.sin_port = htons(atoi(argv[2]));
	inet_pton(AF_INET, argv[1], &a.sin_addr);
	sendto(fd, argv[3], strlen(argv[3]), 0, (struct sockaddr *)&a, sizeof(a));
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, 5000) != 1)
		return fprintf(stderr, "no answer\n"), 1;
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);
	if (n < 0)
		return perror("recv"), 1;
	buf[n] = 0;
	printf("%s\n", buf);
	return 0;
}
"""


# ---- host-side servers ----------------------------------------------------------

class HostHttp:
    """An HTTP server on the host's loopback serving one token; counts requests."""

    def __init__(self):
        self.token = secrets.token_hex(8)
        self.requests = 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                body = outer.token.encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def dns_answer(query):
    """An answer to a DNS query: DNS_NAME A DNS_ADDRESS, NXDOMAIN for other names."""
    if len(query) < 12:
        return None
    qid = query[:2]
    pos, labels = 12, []
    while pos < len(query) and query[pos]:
        n = query[pos]
        labels.append(query[pos + 1:pos + 1 + n].decode(errors="replace"))
        pos += 1 + n
    question = query[12:pos + 5]
    qtype = struct.unpack("!H", query[pos + 1:pos + 3])[0] if pos + 3 <= len(query) else 0
    name = ".".join(labels).lower()
    if name != DNS_NAME:
        return qid + struct.pack("!HHHHH", 0x8183, 1, 0, 0, 0) + question
    if qtype != 1:  # AAAA and others: the name exists, without such records
        return qid + struct.pack("!HHHHH", 0x8180, 1, 0, 0, 0) + question
    answer = b"\xc0\x0c" + struct.pack("!HHIH", 1, 1, 60, 4) + socket.inet_aton(DNS_ADDRESS)
    return qid + struct.pack("!HHHHH", 0x8180, 1, 1, 0, 0) + question + answer


class UdpServer:
    """A UDP server on the host's loopback: DNS answers or an echo."""

    def __init__(self, handler):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.received = 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            self.received += 1
            reply = self.handler(data)
            if reply:
                self.sock.sendto(reply, peer)

    def close(self):
        self.sock.close()


def free_port(kind=socket.SOCK_STREAM):
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path, attempts=40):
    """GET http://127.0.0.1:port/path, retrying while the guest's server starts."""
    last = None
    for _ in range(attempts):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
                return r.read().decode()
        except OSError as e:
            last = e
            time.sleep(0.5)
    raise AssertionError(f"GET 127.0.0.1:{port}{path} failed: {last}")


def udp_request(port, data, attempts=20):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        for _ in range(attempts):
            s.sendto(data, ("127.0.0.1", port))
            try:
                return s.recvfrom(4096)[0]
            except socket.timeout:
                continue
    raise AssertionError(f"no UDP answer from 127.0.0.1:{port}")


# ---- fixtures ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def servers():
    http_server = HostHttp()
    dns = UdpServer(dns_answer)
    echo = UdpServer(lambda data: b"host-echo:" + data)
    yield {"http": http_server, "dns": dns, "echo": echo}
    http_server.close()
    dns.close()
    echo.close()


@pytest.fixture(scope="module")
def nettools(tmp_path_factory):
    """A directory holding the static udpecho, shared with the guests."""
    musl = shutil.which("musl-gcc")
    if not musl:
        pytest.fail("musl-gcc is missing: apt-get install musl-tools", pytrace=False)
    d = tmp_path_factory.mktemp("nettools")
    src = d / "udpecho.c"
    src.write_text(UDPECHO_C)
    subprocess.run([musl, "-static", "-O2", "-o", str(d / "udpecho"), str(src)], check=True)
    src.unlink()
    os.chmod(d, 0o755)  # the image's workload runs as a user other than root
    return d


class Net:
    """capsa with the module's environment: its image store, a runtime
    directory of its own and the test DNS server."""

    def __init__(self, capsa_bin, env):
        self.bin = capsa_bin
        self.env = env

    def __call__(self, *args, timeout=RUN_TIMEOUT):
        argv = [str(self.bin)] + [str(a) for a in args]
        try:
            proc = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=self.env, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            pytest.fail(f"capsa did not finish within {timeout:.0f} s: {' '.join(argv)}\n"
                        f"stderr so far: {(e.stderr or b'')[-2000:]!r}")
        return Result(args, proc.returncode, proc.stdout, proc.stderr)

    def exec(self, vm, *command, timeout=120):
        return self("exec", vm, *command, timeout=timeout)


@pytest.fixture(scope="module")
def net(first_boot, capsa_bin, image_env, servers, tmp_path_factory):
    if first_boot.returncode == CAPSA_FAILURE:
        pytest.fail(f"the first guest boot failed: {first_boot.stderr.strip()}", pytrace=False)
    env = dict(image_env)
    env["XDG_RUNTIME_DIR"] = str(tmp_path_factory.mktemp("runtime"))
    os.chmod(env["XDG_RUNTIME_DIR"], 0o700)
    env["CAPSA_DNS_SERVER"] = f"127.0.0.1:{servers['dns'].port}"
    ctl = Net(capsa_bin, env)
    yield ctl
    ctl("rm", "-f", "net-open", "net-private")


@pytest.fixture(scope="module")
def open_vm(net, test_images, nettools):
    """A VM from the user test image (ExposedPorts 8080/tcp) with the default
    policy: its web server published with -p and -P, a UDP echo with -p."""
    ports = {"http": free_port(), "udp": free_port(socket.SOCK_DGRAM)}
    command = (f"{GUEST_TOOLS}/udpecho {GUEST_UDP_PORT} & "
               f"exec httpd -f -p {GUEST_HTTP_PORT} -h /home/app/work")
    result = net("run", "-d", "-q", "--name", "net-open", "-P",
                 "-p", f"{ports['http']}:{GUEST_HTTP_PORT}",
                 "-p", f"127.0.0.1:{ports['udp']}:{GUEST_UDP_PORT}/udp",
                 "-v", f"{nettools}:{GUEST_TOOLS}:ro",
                 f"oci:{test_images['user']}:latest", command)
    assert result.returncode == 0, result
    # -P prints "8080/tcp -> 0.0.0.0:PORT" for the image's one exposed port.
    mapped = [line for line in result.stderr.splitlines() if line.startswith(f"{GUEST_HTTP_PORT}/tcp -> ")]
    assert len(mapped) == 1, result
    ports["published_all"] = int(mapped[0].rsplit(":", 1)[1])
    return "net-open", ports


@pytest.fixture(scope="module")
def private_vm(net, rootfs, nettools, open_vm):
    """A VM with --egress deny_private serving HTTP on a published port.
    (Depends on open_vm only so that the two never boot at once.)"""
    port = free_port()
    result = net("run", "-d", "--name", "net-private", "--egress", "deny_private", "-p", f"{port}:8000",
                 "-v", f"{nettools}:{GUEST_TOOLS}:ro", "--rootfs", rootfs, "--",
                 "sh", "-c", "mkdir -p /tmp/www && echo private-ok > /tmp/www/index.html && "
                 "exec httpd -f -p 8000 -h /tmp/www")
    assert result.returncode == 0, result
    return "net-private", port


# ---- the default network ------------------------------------------------------------------

def test_guest_address_route_and_dns(net, open_vm):
    vm, _ = open_vm
    result = net.exec(vm, "sh", "-c", "ip addr show eth0; ip route; cat /etc/resolv.conf")
    assert result.returncode == 0, result
    assert "inet 10.0.2.15/24" in result.stdout, result
    assert f"default via {GATEWAY}" in result.stdout, result
    assert "nameserver 10.0.2.3" in result.stdout, result


def test_published_port_serves_guest_web_server(open_vm):
    _, ports = open_vm
    assert http_get(ports["http"], "/hello.txt") == "hello from the work directory\n"


def test_publish_all_maps_exposed_port(open_vm):
    _, ports = open_vm
    assert ports["published_all"] != ports["http"]
    assert http_get(ports["published_all"], "/hello.txt") == "hello from the work directory\n"


def test_guest_reaches_host_through_gateway(net, open_vm, servers):
    vm, _ = open_vm
    result = net.exec(vm, "wget", "-q", "-O", "-", f"http://{GATEWAY}:{servers['http'].port}/token")
    assert result.returncode == 0, result
    assert result.stdout == servers["http"].token, result


def test_dns_answered_by_test_server(net, open_vm):
    vm, _ = open_vm
    result = net.exec(vm, "nslookup", DNS_NAME)
    assert result.returncode == 0, result
    assert DNS_ADDRESS in result.stdout, result
    result = net.exec(vm, "nslookup", "no-such-name.example")
    assert result.returncode != 0, result


def test_udp_guest_to_host(net, open_vm, servers):
    vm, _ = open_vm
    result = net.exec(vm, f"{GUEST_TOOLS}/udpecho", GATEWAY, str(servers["echo"].port), "from-guest")
    assert result.returncode == 0, result
    assert result.stdout.strip() == "host-echo:from-guest", result


def test_udp_host_to_guest(open_vm):
    _, ports = open_vm
    assert udp_request(ports["udp"], b"from-host") == b"echo:from-host"


# ---- deny_private -------------------------------------------------------------------

def test_deny_private_refuses_host_loopback(net, private_vm, servers):
    vm, _ = private_vm
    before = servers["http"].requests
    result = net.exec(vm, "timeout", "5", "wget", "-q", "-O", "-", f"http://{GATEWAY}:{servers['http'].port}/token")
    assert result.returncode != 0, result
    assert servers["http"].token not in result.stdout
    assert servers["http"].requests == before
    received = servers["echo"].received
    result = net.exec(vm, f"{GUEST_TOOLS}/udpecho", GATEWAY, str(servers["echo"].port), "blocked")
    assert result.returncode != 0, result
    assert servers["echo"].received == received


def test_deny_private_refuses_metadata_service(net, private_vm):
    vm, _ = private_vm
    result = net.exec(vm, "timeout", "5", "wget", "-q", "-O", "-", "http://169.254.169.254/")
    assert result.returncode != 0, result


def test_deny_private_keeps_dns_and_published_ports(net, private_vm):
    vm, port = private_vm
    result = net.exec(vm, "nslookup", DNS_NAME)
    assert result.returncode == 0 and DNS_ADDRESS in result.stdout, result
    # The replies go to the gateway (the host's loopback), a private address.
    assert http_get(port, "/index.html") == "private-ok\n"


# ---- no network, bad options ----------------------------------------------------------

def test_network_none_has_no_interface(net, rootfs, private_vm):
    result = net("run", "--network", "none", "--rootfs", rootfs, "--", "ls", "/sys/class/net")
    assert result.returncode == 0, result
    assert result.stdout.split() == ["lo"], result


# ---- TAP ------------------------------------------------------------------------------

@pytest.fixture
def tap_device():
    """A host TAP device at 10.9.0.1/24 (the tests run as root in the nested VM)."""
    ip = shutil.which("ip") or "/sbin/ip"
    name = f"capsatap{secrets.token_hex(2)}"
    subprocess.run([ip, "tuntap", "add", "dev", name, "mode", "tap"], check=True)
    try:
        subprocess.run([ip, "addr", "add", "10.9.0.1/24", "dev", name], check=True)
        subprocess.run([ip, "link", "set", name, "up"], check=True)
        yield name
    finally:
        subprocess.run([ip, "link", "del", name], check=False)


def test_tap_network_reaches_the_host(net, rootfs, private_vm, tap_device):
    # The guest's interface is the workload's to configure in TAP mode.
    script = ("ip addr add 10.9.0.2/24 dev eth0 && ip link set eth0 up && "
              "ping -c 1 -W 5 10.9.0.1 >/dev/null && echo reached")
    result = net("run", "--network", f"tap:{tap_device}", "--rootfs", rootfs, "--", "sh", "-c", script)
    assert result.returncode == 0, result
    assert result.stdout == "reached\n", result


@pytest.mark.parametrize("option, message", [
    (["-p", "80"], "is not [HOSTIP:]HOSTPORT:GUESTPORT"),
    (["-p", "8080:80/sctp"], "tcp or udp"),
    (["--egress", "deny_everything"], "egress"),
    (["--network", "bridge"], "is not one of nat, none, tap:NAME"),
])
def test_bad_network_options(cli, rootfs, option, message):
    result = cli("run", *option, "--rootfs", rootfs, "--", "true")
    assert result.returncode == CAPSA_FAILURE, result
    assert message in result.stderr, result
