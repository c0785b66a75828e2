"""A seccomp-BPF deny list for the local sandbox, assembled here (no libseccomp binding needed).

bubblewrap loads it (``--seccomp FD``) into the container's first process, so the zygote, every
session and every cell inherit it; with ``no_new_privs`` it can never be lifted. The docker backend
has the kernel install it itself (`_kernel.load_seccomp`), on top of Docker's default profile. It denies, with
EPERM, the syscalls that container escapes and kernel exploits usually start from, and that Python
code has no business calling: ptrace and cross-process memory access, (u)mount and the new mount
API, new namespaces (unshare, setns, clone with CLONE_NEW* flags), kernel modules, kexec, bpf,
perf_event_open, userfaultfd, keyrings, io_uring, handle-based opens, clock and host settings, and
kill(-1, sig) (which would take down the cell's own kernel with everything else of its uid).
clone3 answers ENOSYS so that libc falls back to clone, whose flags the filter can inspect. Any
other architecture than x86_64 in a syscall (the x32 ABI, 32-bit int 0x80) kills the process.

Only x86_64 is described; elsewhere `program()` returns None and the sandbox runs without it.
"""

from __future__ import annotations

import os
import platform
import struct

AUDIT_ARCH_X86_64 = 0xC000003E
_RET_ALLOW = 0x7FFF0000
_RET_KILL_PROCESS = 0x80000000
_RET_ERRNO = 0x00050000
EPERM, ENOSYS = 1, 38
_CLONE_NS_FLAGS = 0x7E020080  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME

# x86_64 numbers (arch/x86/entry/syscalls/syscall_64.tbl)
DENIED_X86_64 = {
    "ptrace": 101,
    "syslog": 103,
    "uselib": 134,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "init_module": 175,
    "delete_module": 176,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "migrate_pages": 256,
    "unshare": 272,
    "move_pages": 279,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "pidfd_getfd": 438,
    "process_madvise": 440,
    "mount_setattr": 442,
}
_CLONE, _CLONE3, _KILL = 56, 435, 62


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


_LD_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K


def program() -> bytes | None:
    """The filter as an array of `struct sock_filter`, or None on an architecture not described."""
    if platform.machine() != "x86_64":
        return None
    p = [
        _insn(_LD_ABS, 4),  # seccomp_data.arch
        _insn(_JEQ, AUDIT_ARCH_X86_64, 1, 0),
        _insn(_RET, _RET_KILL_PROCESS),
        _insn(_LD_ABS, 0),  # seccomp_data.nr
        _insn(_JGE, 0x40000000, 0, 1),  # the x32 ABI
        _insn(_RET, _RET_ERRNO | EPERM),
        _insn(_JEQ, _CLONE3, 0, 1),
        _insn(_RET, _RET_ERRNO | ENOSYS),
        _insn(_JEQ, _KILL, 0, 4),  # kill(-1, sig): every process of the family, its kernel too
        _insn(_LD_ABS, 16),
        _insn(_JEQ, 0xFFFFFFFF, 0, 1),
        _insn(_RET, _RET_ERRNO | EPERM),
        _insn(_RET, _RET_ALLOW),
        _insn(_LD_ABS, 0),
        _insn(_JEQ, _CLONE, 0, 4),
        _insn(_LD_ABS, 16),  # args[0], low word: the clone flags
        _insn(_JSET, _CLONE_NS_FLAGS, 0, 1),
        _insn(_RET, _RET_ERRNO | EPERM),
        _insn(_RET, _RET_ALLOW),
    ]
    for nr in sorted(DENIED_X86_64.values()):
        p += [_insn(_JEQ, nr, 0, 1), _insn(_RET, _RET_ERRNO | EPERM)]
    p.append(_insn(_RET, _RET_ALLOW))
    return b"".join(p)


def program_fd() -> int | None:
    """A pipe's read end holding the program, as bwrap's --seccomp wants it (None: no filter)."""
    prog = program()
    if prog is None:
        return None
    r, w = os.pipe()
    try:
        os.write(w, prog)  # a few hundred bytes: fits the pipe buffer
    finally:
        os.close(w)
    return r
