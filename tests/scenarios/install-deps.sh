#!/usr/bin/env bash
# Installs what the recording tier (tests/scenarios, tcpdiag lab) needs on a fresh Debian/Ubuntu
# machine: tcpdump (and libpcap), nftables, iptables, ethtool. iproute2 and openssl are assumed.
# Installs only what is missing; does nothing when not root (the tier is skipped then).
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: not root, the recording tier will be skipped" >&2
    exit 0
fi

missing=()
for pair in tcpdump:tcpdump nft:nftables iptables:iptables ethtool:ethtool; do
    cmd=${pair%%:*}
    pkg=${pair#*:}
    command -v "$cmd" >/dev/null 2>&1 || missing+=("$pkg")
done

if [ ${#missing[@]} -eq 0 ]; then
    echo "install-deps: tcpdump, nft, iptables, ethtool already installed"
    exit 0
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=600 update -q
apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}"
