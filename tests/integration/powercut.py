"""A power cut on demand, for durability tests: an ext4 filesystem on a loop
device whose writes can be stopped dead, as a power failure stops them.

    with LoopExt4(tmp_path / "disk") as fs:      # skips unless root with a loop device
        srv = server_factory({"data_directory": str(fs.mountpoint / "data")})
        ...
        fs.cut(srv)                              # SIGKILL, then the power goes
        fs.remount()                             # what the disk holds now
        srv.start()

The cut is ioctl(FS_IOC_SHUTDOWN, EXT4_GOING_FLAGS_NOLOGFLUSH): ext4 stops at
once, without flushing its journal or any dirty page, so the filesystem
comes back exactly as a power failure would leave it: what was synced is
there; a file whose size a journal commit (every 5 s) recorded but whose
data pages were still dirty ends in NUL bytes; anything newer is gone.
(Device-mapper's dm-flakey would do the same, but is not on every kernel.)
"""
import fcntl
import os
import pathlib
import struct
import subprocess
import time

import pytest

from conftest import kill_process_group

# <linux/fs.h>: FS_IOC_SHUTDOWN = _IOR('X', 125, __u32); flags from ext4.h.
FS_IOC_SHUTDOWN = 0x8004587D
EXT4_GOING_FLAGS_NOLOGFLUSH = 2


def _run(*args):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60)


class LoopExt4:
    """ext4 in an image file under workdir, on a loop device, mounted at
    workdir/mnt (mode 0755, so the mail_owner can reach its own directories
    there). Skips the test (pytest.skip) when not root or when no loop
    device can be set up; any later failure is an error."""

    def __init__(self, workdir, size_mb=64, mkfs_options=()):
        self.workdir = pathlib.Path(workdir)
        self.mkfs_options = list(mkfs_options)  # e.g. ("-O", "^has_journal")
        self.image = self.workdir / "ext4.img"
        self.mountpoint = self.workdir / "mnt"
        self.size_mb = size_mb
        self.device = None
        self.mounted = False

    def __enter__(self):
        if os.geteuid() != 0:
            pytest.skip("a power-cut test needs root (loop device, mount)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(exist_ok=True)
        with open(self.image, "wb") as f:
            f.truncate(self.size_mb << 20)
        r = _run("losetup", "--find", "--show", str(self.image))
        if r.returncode != 0:
            pytest.skip("no loop device: %s" % r.stderr.strip())
        self.device = r.stdout.strip()
        # No lazy init: its background thread would keep writing after the cut.
        r = _run("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
                 *self.mkfs_options, self.device)
        assert r.returncode == 0, r.stderr
        self.mount()
        os.chmod(self.mountpoint, 0o755)
        for p in [self.workdir] + list(self.workdir.parents):
            if str(p) in ("/", "/tmp"):
                break
            os.chmod(p, os.stat(p).st_mode | 0o711)
        return self

    def mount(self):
        # The defaults (data=ordered, commit=5) are what the campaign cut.
        r = _run("mount", "-t", "ext4", self.device, str(self.mountpoint))
        assert r.returncode == 0, r.stderr
        self.mounted = True

    def cut(self, *servers):
        """Kills every given server's process group with SIGKILL (nothing
        they hold open may keep the filesystem busy), then cuts the power."""
        for srv in servers:
            if srv.proc is None:
                continue
            kill_process_group(srv.proc.pid)
            srv.proc.wait(timeout=10)
            srv.proc = None
            srv.logf.close()
        fd = os.open(self.mountpoint, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.ioctl(fd, FS_IOC_SHUTDOWN, struct.pack("I", EXT4_GOING_FLAGS_NOLOGFLUSH))
        finally:
            os.close(fd)
        self.umount()

    def umount(self):
        # The worker's children die with it, but give the kernel a moment.
        for _ in range(50):
            r = _run("umount", str(self.mountpoint))
            if r.returncode == 0:
                self.mounted = False
                return
            time.sleep(0.1)
        raise AssertionError("cannot unmount %s: %s" % (self.mountpoint, r.stderr))

    def remount(self):
        """Mounts what the disk holds after the cut (ext4 replays its journal).

        On a fresh loop device: a mount namespace made by another process
        while the filesystem was mounted keeps its (shut down) superblock
        alive after our umount, and mounting the same device again would
        hand that one back. The old device goes when its last user does."""
        _run("losetup", "-d", self.device)
        self.device = None
        r = _run("losetup", "--find", "--show", str(self.image))
        assert r.returncode == 0, r.stderr
        self.device = r.stdout.strip()
        self.mount()

    def __exit__(self, *exc):
        if self.mounted:
            _run("umount", "-l", str(self.mountpoint))
            self.mounted = False
        if self.device:
            _run("losetup", "-d", self.device)
            self.device = None
        try:
            self.image.unlink()
        except FileNotFoundError:
            pass
        return False
