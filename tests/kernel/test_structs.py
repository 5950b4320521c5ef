"""The XFRM struct declarations against the kernel's uapi header <linux/xfrm.h>.

Sizes are also hard-coded in `expected_size` (sizeof on x86-64 from the uapi header of
Linux 6.1, linux-libc-dev 6.1.x): those checks always run. Where a C compiler and the header
are installed, a program compiled against the header prints sizeof and the offset of every
member, and packs fully populated structs: our layouts and bytes must equal the compiler's
(REQUIREMENTS X-06, X-08, X-09, X-15, X-01 selector layout).
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
from pathlib import Path

import pytest

from ikev2.kernel.xfrm import structs as m
from ikev2.kernel.xfrm.cstruct import CStruct, pack_addr

HEADER = Path("/usr/include/linux/xfrm.h")

C_TYPES: dict[type[CStruct], str] = {
    m.Address: "xfrm_address_t",
    m.XfrmId: "struct xfrm_id",
    m.Selector: "struct xfrm_selector",
    m.LifetimeCfg: "struct xfrm_lifetime_cfg",
    m.LifetimeCur: "struct xfrm_lifetime_cur",
    m.Stats: "struct xfrm_stats",
    m.UserSaInfo: "struct xfrm_usersa_info",
    m.UserSaId: "struct xfrm_usersa_id",
    m.UserPolicyInfo: "struct xfrm_userpolicy_info",
    m.UserTmpl: "struct xfrm_user_tmpl",
    m.EncapTmpl: "struct xfrm_encap_tmpl",
    m.UserMigrate: "struct xfrm_user_migrate",
    m.UserKmAddress: "struct xfrm_user_kmaddress",
    m.ReplayState: "struct xfrm_replay_state",
    m.ReplayStateEsn: "struct xfrm_replay_state_esn",
    m.Mark: "struct xfrm_mark",
    m.UserPolicyType: "struct xfrm_userpolicy_type",
    m.UserSpiInfo: "struct xfrm_userspi_info",
    m.UserPolicyId: "struct xfrm_userpolicy_id",
    m.UserAcquire: "struct xfrm_user_acquire",
    m.UserExpire: "struct xfrm_user_expire",
    m.UserPolExpire: "struct xfrm_user_polexpire",
    m.UserMapping: "struct xfrm_user_mapping",
}

# uapi sizeof() on x86-64, REQUIREMENTS X-* and /work/shared/tools/README.md ("224, 168, 64")
UAPI_SIZES = {
    "struct xfrm_usersa_info": 224, "struct xfrm_userpolicy_info": 168,
    "struct xfrm_user_tmpl": 64, "struct xfrm_selector": 56, "struct xfrm_id": 24,
    "struct xfrm_usersa_id": 24, "struct xfrm_userspi_info": 232,
    "struct xfrm_userpolicy_id": 64, "struct xfrm_user_acquire": 280,
    "struct xfrm_user_expire": 232, "struct xfrm_user_migrate": 76,
    "struct xfrm_user_kmaddress": 40, "struct xfrm_encap_tmpl": 24,
    "struct xfrm_replay_state_esn": 24, "struct xfrm_user_mapping": 64,
}


def leaves(cls: type[CStruct], prefix: str = "", base: int = 0):
    """(C member path, our offset, size) of every non-padding leaf member."""
    off = base
    for name, fmt in cls.members:
        if isinstance(fmt, str):
            size = struct.calcsize("=" + fmt.lstrip("=<>!"))
            if not name.startswith("_"):
                yield prefix + name, off, size
            off += size
        elif fmt is m.Address:
            yield prefix + name, off, 16
            off += 16
        else:
            yield from leaves(fmt, f"{prefix}{name}.", off)
            off += fmt.size


def test_sizes_match_the_uapi_header_numbers() -> None:
    """sizeof() of every declared struct equals the uapi value recorded with it (X-06/X-09)."""
    for cls, cname in C_TYPES.items():
        assert cls.expected_size is not None, cname
        assert cls.size == cls.expected_size, cname
        if cname in UAPI_SIZES:
            assert cls.size == UAPI_SIZES[cname], cname


def _compile_and_run(source: str) -> str:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or not HEADER.exists():
        pytest.skip("no C compiler or no /usr/include/linux/xfrm.h (linux-libc-dev)")
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "x.c"), os.path.join(d, "x")
        Path(src).write_text(source)
        subprocess.run([cc, "-O0", "-o", exe, src], check=True, capture_output=True)
        return subprocess.run([exe], check=True, capture_output=True, text=True).stdout


def test_layout_matches_the_compiled_header() -> None:
    """Every member's offset and size, as GCC computes them from <linux/xfrm.h>."""
    lines = ["#include <stdio.h>", "#include <stddef.h>", "#include <linux/xfrm.h>",
             "int main(void) {"]
    expect: dict[str, int] = {}
    for cls, cname in C_TYPES.items():
        lines.append(f'printf("sizeof {cname} %zu\\n", sizeof({cname}));')
        expect[f"sizeof {cname}"] = cls.size
        if cls is m.Address:
            continue
        for path, off, size in leaves(cls):
            lines.append(f'printf("{cname} {path} %zu %zu\\n", offsetof({cname}, {path}), '
                         f"sizeof((({cname} *)0)->{path}));")
            expect[f"{cname} {path}"] = off * 1000 + size
    lines += ['printf("sizeof struct xfrm_usersa_flush %zu\\n", '
              "sizeof(struct xfrm_usersa_flush));", "return 0; }"]
    out = _compile_and_run("\n".join(lines))
    got: dict[str, int] = {}
    for line in out.splitlines():
        words = line.split()
        if words[0] == "sizeof":
            got[" ".join(words[:-1])] = int(words[-1])
        else:
            got[" ".join(words[:-2])] = int(words[-2]) * 1000 + int(words[-1])
    assert got.pop("sizeof struct xfrm_usersa_flush") == 1  # we pad its body to 4
    mismatches = {k: (v, got.get(k)) for k, v in expect.items() if got.get(k) != v}
    assert not mismatches
    assert len(got) == len(expect)


A6 = "2001:db8:1::1"
B6 = "2001:db8:1::2"


def _c_addr6(field: str, addr: str) -> str:
    raw = pack_addr(addr)
    return "".join(f"{field}[{i}] = 0x{b:02x};" for i, b in enumerate(raw))


GOLDEN_C = f"""
#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <linux/xfrm.h>
static void dump(const char *name, const void *p, size_t n) {{
    const unsigned char *b = p; printf("%s ", name);
    for (size_t i = 0; i < n; i++) printf("%02x", b[i]); printf("\\n");
}}
int main(void) {{
    struct xfrm_usersa_info sa; memset(&sa, 0, sizeof sa);
    {_c_addr6("sa.sel.daddr.in6.s6_addr", "2001:db8:b::")}
    {_c_addr6("sa.sel.saddr.in6.s6_addr", "2001:db8:a::")}
    sa.sel.dport = htons(0x0500); sa.sel.dport_mask = htons(0xffff);
    sa.sel.sport = htons(5); sa.sel.sport_mask = htons(0xffff);
    sa.sel.family = AF_INET6; sa.sel.prefixlen_d = 48; sa.sel.prefixlen_s = 64;
    sa.sel.proto = 135; sa.sel.ifindex = 7; sa.sel.user = 9;
    {_c_addr6("sa.id.daddr.in6.s6_addr", B6)}
    sa.id.spi = htonl(0xc0ffee01); sa.id.proto = 50;
    {_c_addr6("sa.saddr.in6.s6_addr", A6)}
    sa.lft.soft_byte_limit = 1; sa.lft.hard_byte_limit = 2; sa.lft.soft_packet_limit = 3;
    sa.lft.hard_packet_limit = 4; sa.lft.soft_add_expires_seconds = 5;
    sa.lft.hard_add_expires_seconds = 6; sa.lft.soft_use_expires_seconds = 7;
    sa.lft.hard_use_expires_seconds = 8;
    sa.curlft.bytes = 0x1122334455667788ULL; sa.curlft.packets = 10;
    sa.curlft.add_time = 11; sa.curlft.use_time = 12;
    sa.stats.replay_window = 13; sa.stats.replay = 14; sa.stats.integrity_failed = 15;
    sa.seq = 16; sa.reqid = 0x1ce00001; sa.family = AF_INET6; sa.mode = 1;
    sa.replay_window = 32; sa.flags = 128;
    dump("usersa_info", &sa, sizeof sa);

    struct xfrm_user_tmpl t; memset(&t, 0, sizeof t);
    {_c_addr6("t.id.daddr.in6.s6_addr", B6)}
    t.id.spi = htonl(0x01020304); t.id.proto = 50; t.family = AF_INET6;
    {_c_addr6("t.saddr.in6.s6_addr", A6)}
    t.reqid = 0x1ce00002; t.mode = 1; t.share = 2; t.optional = 1;
    t.aalgos = 0xffffffff; t.ealgos = 0xfffffffe; t.calgos = 0xfffffffd;
    dump("user_tmpl", &t, sizeof t);

    struct xfrm_user_migrate mg; memset(&mg, 0, sizeof mg);
    {_c_addr6("mg.old_daddr.in6.s6_addr", B6)}
    {_c_addr6("mg.old_saddr.in6.s6_addr", A6)}
    mg.new_daddr.a4 = htonl(0xc0000202); mg.new_saddr.a4 = htonl(0xc0000201);
    mg.proto = 50; mg.mode = 1; mg.reqid = 77; mg.old_family = AF_INET6;
    mg.new_family = AF_INET;
    dump("user_migrate", &mg, sizeof mg);

    struct xfrm_encap_tmpl e; memset(&e, 0, sizeof e);
    e.encap_type = 2; e.encap_sport = htons(4500); e.encap_dport = htons(31337);
    dump("encap_tmpl", &e, sizeof e);

    struct xfrm_userpolicy_info p; memset(&p, 0, sizeof p);
    p.sel = sa.sel; p.lft = sa.lft; p.curlft = sa.curlft;
    p.priority = 0x10001; p.index = 0x99; p.dir = 1; p.action = 1; p.flags = 2;
    p.share = 3;
    dump("userpolicy_info", &p, sizeof p);
    return 0;
}}
"""


def _values() -> dict[str, dict]:
    sel = {
        "daddr": pack_addr("2001:db8:b::"), "saddr": pack_addr("2001:db8:a::"),
        "dport": 0x0500, "dport_mask": 0xFFFF, "sport": 5, "sport_mask": 0xFFFF,
        "family": socket.AF_INET6, "prefixlen_d": 48, "prefixlen_s": 64, "proto": 135,
        "ifindex": 7, "user": 9,
    }
    lft = {f: i + 1 for i, f in enumerate(n for n, _ in m.LifetimeCfg.members)}
    cur = {"bytes": 0x1122334455667788, "packets": 10, "add_time": 11, "use_time": 12}
    return {
        "usersa_info": {
            "sel": sel, "id": {"daddr": pack_addr(B6), "spi": 0xC0FFEE01, "proto": 50},
            "saddr": pack_addr(A6), "lft": lft, "curlft": cur,
            "stats": {"replay_window": 13, "replay": 14, "integrity_failed": 15},
            "seq": 16, "reqid": 0x1CE00001, "family": socket.AF_INET6, "mode": 1,
            "replay_window": 32, "flags": 128,
        },
        "user_tmpl": {
            "id": {"daddr": pack_addr(B6), "spi": 0x01020304, "proto": 50},
            "family": socket.AF_INET6, "saddr": pack_addr(A6), "reqid": 0x1CE00002,
            "mode": 1, "share": 2, "optional": 1, "aalgos": 0xFFFFFFFF,
            "ealgos": 0xFFFFFFFE, "calgos": 0xFFFFFFFD,
        },
        "user_migrate": {
            "old_daddr": pack_addr(B6), "old_saddr": pack_addr(A6),
            "new_daddr": pack_addr("192.0.2.2"), "new_saddr": pack_addr("192.0.2.1"),
            "proto": 50, "mode": 1, "reserved": 0, "reqid": 77, "old_family": socket.AF_INET6,
            "new_family": socket.AF_INET,
        },
        "encap_tmpl": {"encap_type": 2, "encap_sport": 4500, "encap_dport": 31337,
                       "encap_oa": bytes(16)},
        "userpolicy_info": {
            "sel": sel, "lft": lft, "curlft": cur, "priority": 0x10001, "index": 0x99,
            "dir": 1, "action": 1, "flags": 2, "share": 3,
        },
    }


_CLASSES = {"usersa_info": m.UserSaInfo, "user_tmpl": m.UserTmpl,
            "user_migrate": m.UserMigrate, "encap_tmpl": m.EncapTmpl,
            "userpolicy_info": m.UserPolicyInfo}


def test_packed_bytes_equal_the_compilers() -> None:
    """Golden bytes: GCC fills each struct from <linux/xfrm.h>; our pack must be identical
    and decode back to the same values (X-01 MH type in sport, X-08 encap ports, X-15)."""
    out = _compile_and_run(GOLDEN_C)
    golden = dict(line.split() for line in out.splitlines())
    for name, value in _values().items():
        cls = _CLASSES[name]
        assert cls.pack(value).hex() == golden[name], name
        assert cls.unpack(bytes.fromhex(golden[name])) == value, name
