"""Static inbound maps (port forwards) with a real HTTP server and client (issue 3).

pbx-public-access forwards TCP 80 to the PBX and TCP 8000 to reporting:80.
Each server answers with its own node name, so the test sees which host the
router really delivered to.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.natlab

TOPOLOGY = Path(__file__).resolve().parents[2] / "topologies" / "pbx-public-access.yaml"
WAN = "203.0.113.1"
SERVER = """
import http.server, sys
name = sys.argv[1]
class Name(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{name} saw {self.client_address[0]}".encode()
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("0.0.0.0", 80), Name).serve_forever()
"""
CLIENT = """
import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())
"""


def get(lab, node: str, url: str) -> str:
    done = lab.exec(node, [sys.executable, "-c", CLIENT, url], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_forwards_reach_the_mapped_hosts_and_ports(natlab_lab):
    lab = natlab_lab(TOPOLOGY)
    remote = str(lab.topology.hosts["remote-phone"].interfaces[0].address)
    servers = [
        lab.popen(node, [sys.executable, "-c", SERVER, node]) for node in ("pbx", "reporting")
    ]
    try:
        time.sleep(0.5)  # let both servers bind
        for server in servers:
            assert server.poll() is None, "an HTTP server did not start"
        assert get(lab, "remote-phone", f"http://{WAN}:80/") == f"pbx saw {remote}"
        assert get(lab, "remote-phone", f"http://{WAN}:8000/") == f"reporting saw {remote}"
        home = get(lab, "home-phone", f"http://{WAN}:8000/")
        home_wan = str(lab.topology.routers["home"].wan.address)
        assert home == f"reporting saw {home_wan}", "through two NATs: the home router's address"
        unmapped = lab.exec(
            "remote-phone",
            [sys.executable, "-c", CLIENT, f"http://{WAN}:8080/"],
            capture_output=True,
            text=True,
        )
        assert unmapped.returncode != 0, "a port that is not forwarded stays closed"
    finally:
        for server in servers:
            server.kill()
            server.wait()
    hits = [e for e in lab.router("main").events().events if e.kind == "static-map-hit"]
    assert hits, "the router reports its forward hits"
