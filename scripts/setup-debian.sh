#!/usr/bin/env bash
# setup-debian.sh - prepare a Debian 12 machine to run ikev2d's test suite.
#
# Idempotent; run as root (CI runs it from scripts/test.sh on a fresh machine).
#   1. apt: python3 + pip + venv, strongSwan (charon, swanctl, pki, extra plugins),
#      tshark/tcpdump, ping, iproute2, util-linux (unshare/nsenter), iptables (Debian 12:
#      iptables-nft by default; the MOBIKE NAT test's masquerading namespace).  Skipped
#      when every package is already installed (SETUP_FORCE_APT=1 forces `apt-get update`
#      + install).
#   2. pip install -e '.[test]' of this repo into the interpreter chosen below.
#
# Which Python (PEP 668, "externally managed" environments):
#   * If `python3` on PATH is NOT externally managed (pyenv, a venv, a container image with
#     its own CPython) and has pip, the repo is installed into it directly.
#   * Debian's /usr/bin/python3 IS externally managed: a plain `pip install` is refused.
#     `--break-system-packages` would work but lets pip fight dpkg over files in
#     /usr/lib/python3/dist-packages ("Cannot uninstall ..., RECORD file not found"), so we
#     create a venv instead, at $IKEV2D_VENV (default /opt/ikev2d/venv), and
#     scripts/test.sh puts its bin/ first on PATH, so `python3` and `ikev2d` are the venv's.
#     The venv lives outside the checkout so it is never committed.
#
# Prints the interpreter it set up as the last line: "python: /path/to/python3".
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${IKEV2D_VENV:-/opt/ikev2d/venv}
export DEBIAN_FRONTEND=noninteractive

APT_PACKAGES=(
    python3 python3-pip python3-venv
    strongswan-charon strongswan-swanctl strongswan-pki
    libcharon-extra-plugins libstrongswan-extra-plugins
    tshark tcpdump iputils-ping iproute2 util-linux procps ca-certificates
    iptables
)

log() { echo "setup-debian: $*" >&2; }

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO=(sudo -n)
    else
        SUDO=(false)
    fi
fi

# ------------------------------------------------------------------ apt
missing=()
for p in "${APT_PACKAGES[@]}"; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    [ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] || [ "${SETUP_FORCE_APT:-0}" = 1 ]; then
    if [ "${SUDO[0]:-}" = false ]; then
        log "not root and no sudo: cannot install ${missing[*]}; root/interop tests will skip"
    else
        log "apt-get install ${missing[*]:-(forced)}"
        # tshark asks whether non-root users may capture: answer "no" up front
        echo "wireshark-common wireshark-common/install-setuid boolean false" \
            | "${SUDO[@]}" debconf-set-selections 2>/dev/null || true
        "${SUDO[@]}" apt-get update -q
        "${SUDO[@]}" apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${APT_PACKAGES[@]}"
    fi
fi
# The packaged strongswan-starter/charon service must not run: the interop tests start their
# own charons in network namespaces. There is no systemd in CI containers; if there is one,
# leave the (unconfigured) unit alone - it binds nothing inside our namespaces.

# ------------------------------------------------------------------ python
PY=$(command -v python3 || true)
[ -n "$PY" ] || { log "no python3 after apt install"; exit 1; }

externally_managed() { # $1 = interpreter
    "$1" - <<'EOF'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
in_venv = sys.prefix != getattr(sys, "base_prefix", sys.prefix)
sys.exit(0 if os.path.exists(marker) and not in_venv else 1)
EOF
}

if externally_managed "$PY" || ! "$PY" -m pip --version >/dev/null 2>&1; then
    if [ ! -x "$VENV/bin/python3" ] || ! "$VENV/bin/python3" -m pip --version >/dev/null 2>&1; then
        log "creating venv $VENV (python3 $("$PY" -V 2>&1) is externally managed or has no pip)"
        rm -rf "$VENV"
        mkdir -p "$(dirname "$VENV")"
        "$PY" -m venv "$VENV"
        "$VENV/bin/python3" -m pip install -q --upgrade pip
    fi
    PY=$VENV/bin/python3
fi
# the real interpreter, not a pyenv shim: its bin/ also holds the `ikev2d` entry point
PY=$("$PY" -c 'import sys; print(sys.executable)')
export PIP_ROOT_USER_ACTION=ignore

# pip install -e is idempotent but slow and needs PyPI (build isolation fetches setuptools):
# skip it when pyproject.toml is unchanged since the last successful install into this
# interpreter and the package still imports from this checkout.
stamp_dir=$REPO/.out
stamp=$stamp_dir/setup-debian.stamp
want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1) $PY"
installed_here() {
    # run from / so that the checkout is not on sys.path: the install itself must find it
    (cd / && "$PY" - "$REPO" <<'EOF' 2>/dev/null
import os, sys
import api, certs, ikev2, mobility, pytest, ruff  # noqa: F401  (the [test] extra)
here = os.path.realpath(sys.argv[1])
sys.exit(0 if all(os.path.realpath(m.__file__).startswith(here)
                  for m in (api, certs, ikev2, mobility)) else 1)
EOF
)
}
if [ "$(cat "$stamp" 2>/dev/null || true)" = "$want" ] && installed_here; then
    log "ikev2d already installed (editable) into $PY"
else
    log "pip install -e '.[test]' into $PY"
    "$PY" -m pip install -q --disable-pip-version-check -e "$REPO[test]"
    mkdir -p "$stamp_dir"
    echo "$want" > "$stamp"
fi
echo "python: $PY"
