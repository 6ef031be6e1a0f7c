"""The simulator answers like the real server: same element names, namespaces, fault codes and statuses.

Each captured request is sent, byte for byte, to a simulated camera with the captured password (its
digest is still valid, and the simulator is lenient by default like the real server), and the two
answers are compared as parsed XML: the set of element paths (namespace-qualified), the Body
operation, and for faults the namespace-resolved Code and Subcode values.
"""

from __future__ import annotations

import http.client

import pytest
from lxml import etree

from controller.pollers.onvif.simulator import CameraSimulator, SimCamera
from tests.fixtures.onvif import Exchange, by_prefix, load_exchanges

pytestmark = pytest.mark.integration
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
# Every call the simulator implements, by capture; 28 is the unknown-operation echo, 22/25 NotAuthorized.
SIMULATED = ["00", "01", "02", "03", "04", "07", "08", "09", "10", "11", "22", "23", "25", "28", "29"]


def _paths(root: etree._Element) -> set[str]:
    """Namespace-qualified element paths, ignoring order, counts and values."""
    out = set()
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        chain, node = [], el
        while node is not None:
            chain.append(node.tag)
            node = node.getparent()
        out.add("/".join(reversed(chain)))
    return out


def _resolved(el: etree._Element | None) -> str | None:
    """A QName-valued text (``ter:NotAuthorized``) with its prefix resolved to the namespace."""
    if el is None or not el.text:
        return None
    prefix, _, local = el.text.strip().rpartition(":")
    return f"{{{el.nsmap.get(prefix or None)}}}{local}"


def _fault(root: etree._Element) -> tuple[str | None, list[str | None]] | None:
    fault = root.find(f"{{{SOAP12}}}Body/{{{SOAP12}}}Fault")
    if fault is None:
        return None
    code = _resolved(fault.find(f"{{{SOAP12}}}Code/{{{SOAP12}}}Value"))
    subcodes, sub = [], fault.find(f"{{{SOAP12}}}Code/{{{SOAP12}}}Subcode")
    while sub is not None:
        subcodes.append(_resolved(sub.find(f"{{{SOAP12}}}Value")))
        sub = sub.find(f"{{{SOAP12}}}Subcode")
    return code, subcodes


def _post(port: int, exchange: Exchange) -> tuple[int, str, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(exchange.meta["method"], exchange.meta["path"], body=exchange.request,
                     headers={"Content-Type": exchange.meta["request_content_type"] or "application/soap+xml"})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type") or "", resp.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def camera_port():
    sim = CameraSimulator().start()
    try:
        yield sim.add(SimCamera(password="Passw0rd"))
    finally:
        sim.stop()


@pytest.mark.parametrize("prefix", SIMULATED)
def test_simulator_answers_with_the_captured_structure(camera_port, prefix):
    exchange = by_prefix(load_exchanges(), prefix)
    status, content_type, body = _post(camera_port, exchange)
    real = etree.fromstring(exchange.response)
    mine = etree.fromstring(body)
    assert status == exchange.meta["status"], exchange.name
    assert content_type.split(";")[0] == exchange.meta["response_content_type"]
    real_op, my_op = real.find(f"{{{SOAP12}}}Body")[0], mine.find(f"{{{SOAP12}}}Body")[0]
    assert my_op.tag == real_op.tag
    assert _fault(mine) == _fault(real)
    assert _paths(mine) == _paths(real), sorted(_paths(mine) ^ _paths(real))


def test_dead_channel_fault_matches_the_captured_action_failed_fault(simulator):
    """Capture 30 (ActionFailed, 500) is the shape a dead NVR channel's GetStreamUri answers with."""
    port = simulator.add(SimCamera(channels=2, dead_channels=frozenset({2})))
    captured = by_prefix(load_exchanges(), "08")
    request = captured.request.replace(b">Profile_0<", b">Profile_2<")
    status, _ctype, body = _post(port, Exchange("x", captured.meta, request, b""))
    real = by_prefix(load_exchanges(), "30")
    assert status == real.meta["status"] == 500
    mine_root, real_root = etree.fromstring(body), etree.fromstring(real.response)
    assert _fault(mine_root) == _fault(real_root)
    body_paths = {p for p in _paths(real_root) if "/Body" in p or p.endswith("Body")}
    assert {p for p in _paths(mine_root) if "/Body" in p or p.endswith("Body")} == body_paths


def test_get_on_a_service_endpoint_and_the_snapshot_content_type(simulator):
    port = simulator.add(SimCamera(snapshot_auth="none"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/onvif/device_service")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("Content-Type")) == (200, "text/html")  # as capture 31
    resp.read()
    conn.request("GET", "/snapshot/1.jpg")
    resp = conn.getresponse()
    image = resp.read()
    conn.close()
    real = by_prefix(load_exchanges(), "12b")
    assert resp.getheader("Content-Type") == real.meta["response_content_type"] == "image/jpeg"
    assert image[:3] == real.response[:3] == b"\xff\xd8\xff"


def test_simulator_pullpoint_answers_with_the_captured_structure(simulator):
    """The PullPoint sequence 14, 15, 16, 19, 20, 21, each captured request replayed against a fresh camera."""
    port = simulator.add(SimCamera(password="Passw0rd", max_pull_hold_s=0.2))
    exchanges = load_exchanges()
    for prefix in ("14", "15", "16", "19", "20", "21"):
        exchange = by_prefix(exchanges, prefix)
        status, content_type, body = _post(port, exchange)
        real, mine = etree.fromstring(exchange.response), etree.fromstring(body)
        assert status == exchange.meta["status"], exchange.name
        assert content_type.split(";")[0] == exchange.meta["response_content_type"]
        assert mine.find(f"{{{SOAP12}}}Body")[0].tag == real.find(f"{{{SOAP12}}}Body")[0].tag
        assert _fault(mine) == _fault(real)
        assert _paths(mine) == _paths(real), (exchange.name, sorted(_paths(mine) ^ _paths(real)))
