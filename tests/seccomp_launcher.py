"""Run a program under the seccomp rules of three systemd directives, where systemd cannot start it.

    python tests/seccomp_launcher.py --allow SYSCALL,... --errno EPERM --families AF_UNIX,... -- PROGRAM ARGS...

It loads, with libseccomp (which systemd uses for the same directives), a filter in which
- every system call outside `--allow` fails with `--errno` (SystemCallFilter= as an allow-list, with
  SystemCallErrorNumber=);
- socket() with an address family outside `--families` fails with EAFNOSUPPORT (RestrictAddressFamilies=;
  as in systemd, socketpair() and sockets received from elsewhere are unaffected);
- system calls of another architecture's ABI kill the process (SystemCallArchitectures=native);
and sets no_new_privs (NoNewPrivileges=, which an unprivileged seccomp filter requires anyway), then
executes PROGRAM, which inherits the filter. Only these directives: none of the unit's mount, user or
namespace sandboxing is reproduced. Standard library only (it runs before PROGRAM's environment exists).
"""

from __future__ import annotations

import argparse
import ctypes
import errno
import os
import socket
import sys
from typing import Final

_ACT_ALLOW: Final = 0x7FFF0000
_ACT_ERRNO: Final = 0x00050000
_CMP_EQ: Final = 4
_LINUX_FAMILIES: Final = {"AF_UNIX": 1, "AF_INET": 2, "AF_INET6": 10, "AF_NETLINK": 16, "AF_PACKET": 17,
                           "AF_BLUETOOTH": 31}
"""Linux's numbers (a Python built without Bluetooth headers has no socket.AF_BLUETOOTH)."""
_LAST_FAMILY: Final = 63
"""socket() families 0..63 get an explicit rule (Linux's AF_MAX is 46); higher ones fail with --errno."""


class _ArgCmp(ctypes.Structure):
    """libseccomp's `struct scmp_arg_cmp`."""

    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def _errno_action(number: int) -> int:
    return _ACT_ERRNO | (number & 0xFFFF)


def load_filter(allowed: set[str], error_number: int, families: set[int]) -> None:
    """Install the filter on this process (and whatever it executes next)."""
    lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
    lib.seccomp_init.restype = ctypes.c_void_p
    lib.seccomp_init.argtypes = [ctypes.c_uint32]
    lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
    lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                           ctypes.POINTER(_ArgCmp)]
    lib.seccomp_load.argtypes = [ctypes.c_void_p]
    context = lib.seccomp_init(_errno_action(error_number))
    if not context:
        raise OSError("seccomp_init failed")

    def rule(action: int, number: int, family: int | None = None) -> None:
        compare = None if family is None else (_ArgCmp * 1)(_ArgCmp(0, _CMP_EQ, family, 0))
        result = lib.seccomp_rule_add_array(context, action, number, 0 if compare is None else 1, compare)
        if result < 0:
            raise OSError(-result, f"seccomp_rule_add for system call {number}: {os.strerror(-result)}")

    for name in sorted(allowed - {"socket"}):
        number = lib.seccomp_syscall_resolve_name(name.encode())
        if number >= 0:  # names of other architectures (arm_fadvise64_64 on x86-64) resolve to nothing here
            rule(_ACT_ALLOW, number)
    if "socket" in allowed:
        number = lib.seccomp_syscall_resolve_name(b"socket")
        for family in range(_LAST_FAMILY + 1):
            rule(_ACT_ALLOW if family in families else _errno_action(errno.EAFNOSUPPORT), number, family)
    result = lib.seccomp_load(context)
    if result < 0:
        raise OSError(-result, f"seccomp_load: {os.strerror(-result)}")


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--allow", required=True, help="comma-separated system call names")
    parser.add_argument("--errno", required=True, help="errno name for the others, e.g. EPERM")
    parser.add_argument("--families", required=True, help="comma-separated address families, e.g. AF_UNIX")
    parser.add_argument("program", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    program = args.program[1:] if args.program[:1] == ["--"] else args.program
    if not program:
        parser.error("no program to run")
    load_filter(set(args.allow.split(",")), getattr(errno, args.errno),
                {_LINUX_FAMILIES.get(name) or int(getattr(socket, name)) for name in args.families.split(",")})
    os.execv(program[0], program)


if __name__ == "__main__":
    main(sys.argv[1:])
