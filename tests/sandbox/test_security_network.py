"""No network: not the host's loopback, not the outside world, not DNS."""

import socket

from .sandbox_helpers import assert_contained


def test_tcp_to_a_port_open_on_the_host(fresh_sandbox):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.5)
    port = server.getsockname()[1]
    r = fresh_sandbox.session().run(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)")
    assert r.error is not None and r.error.name in ("ConnectionRefusedError", "OSError", "TimeoutError")
    try:
        conn, _ = server.accept()
        conn.close()
        raise AssertionError("the sandbox reached a port on the host")
    except TimeoutError:
        pass
    finally:
        server.close()
    assert_contained(fresh_sandbox)


def test_tcp_to_an_outside_address(fresh_sandbox):
    r = fresh_sandbox.session().run("import socket\nsocket.create_connection(('1.1.1.1', 443), timeout=2)")
    assert r.error is not None and "unreachable" in r.error.value.lower()
    assert_contained(fresh_sandbox)


def test_dns(fresh_sandbox):
    r = fresh_sandbox.session().run("import socket\nsocket.getaddrinfo('example.com', 443)")
    assert r.error is not None and r.error.name == "gaierror"
    assert_contained(fresh_sandbox)


def test_only_loopback_exists(fresh_sandbox):
    r = fresh_sandbox.session().run("import socket\n[n for _, n in socket.if_nameindex()]")
    assert r.result == "['lo']"
