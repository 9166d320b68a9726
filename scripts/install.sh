#!/usr/bin/env bash
# Install everything natlab and its tests need on a Debian machine, as root:
# the tools the lab runs inside nodes (apt) and natlab itself in ./.venv (pip).
# Safe to run again: it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "install.sh: run me as root (natlab creates network namespaces): sudo $0" >&2
    exit 2
fi

packages=(
    python3 python3-venv python3-pip  # natlab itself
    iproute2 iputils-ping ethtool     # inspecting and using a lab
    iperf3                            # benchmarks/bench_dataplane.py
    tcpdump tshark nftables           # captures in tests, debugging a router
    ruby                              # syntax check of the Vagrantfile
    chromium                          # renders the --html reports in tests (headless)
    stun-client coturn                # STUN clients natlab did not write, for its tests:
                                      # stun (RFC 3489), turnutils_natdiscovery (RFC 5780)
    baresip-core kamailio             # a real softphone and a real SIP proxy/registrar
    dnsmasq-base                      # DNS inside labs (the binary, without a system service)
    natpmpc miniupnpc                 # port-control clients (NAT-PMP, UPnP IGD)
)
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install.sh: apt-get install ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# coturn is here for its client tools only: its TURN server must not run on this machine.
# kamailio likewise: natlab starts its own inside lab nodes.
if [ -d /run/systemd/system ]; then
    systemctl disable --now coturn.service kamailio.service >/dev/null 2>&1 || true
fi

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e '.[test]'
echo "install.sh: natlab is installed in .venv ($(.venv/bin/natlab --version))"
