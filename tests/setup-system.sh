#!/usr/bin/env bash
# Installs the system packages the test suite uses, only when missing:
#   tshark (differential tests), tcpdump + libpcap (recording tier, BPF filters for live capture),
#   nftables/iptables/ethtool/iproute2 (recording tier, live capture in namespaces),
#   chromium (HTML report in a real browser).
# Needs root (CI runs as root). Safe to run repeatedly.
set -euo pipefail
need=()
command -v tshark >/dev/null || need+=(tshark)
command -v tcpdump >/dev/null || need+=(tcpdump)
command -v nft >/dev/null || need+=(nftables)
command -v iptables >/dev/null || need+=(iptables)
command -v ethtool >/dev/null || need+=(ethtool)
command -v ip >/dev/null || need+=(iproute2)
command -v chromium >/dev/null || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "tests/setup-system.sh: need root to install: ${need[*]} (tests needing them will be skipped)" >&2
    exit 0
  fi
  echo "installing: ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
