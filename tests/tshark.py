"""tshark as an independent ESP implementation: decode one raw IP packet (LINKTYPE_RAW)
with an `esp_sa` UAT line (api/keyexport.py) and return the verbose text."""

from __future__ import annotations

import shutil
import struct
import subprocess
from pathlib import Path

import pytest


def decode_esp(pkt: bytes, esp_sa_line: str, tmp: Path, *options: str) -> str:
    """`pkt` (IPv4 or IPv6 with ESP) through tshark with the ESP SA; skips the test when
    tshark is not installed."""
    if shutil.which("tshark") is None:
        pytest.skip("tshark not installed")
    pcap = tmp / "esp.pcap"
    pcap.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 101)
                     + struct.pack("<IIII", 0, 0, len(pkt), len(pkt)) + pkt)
    args = ["tshark", "-r", str(pcap), "-o", "esp.enable_encryption_decode:TRUE"]
    for opt in options:
        args += ["-o", opt]
    out = subprocess.run([*args, "-o", f"uat:esp_sa:{esp_sa_line}", "-V"],
                         capture_output=True, text=True, timeout=60, check=False)
    return out.stdout + out.stderr
