"""The servers' queues on an ext4 filesystem of their own: an image file
under bench/out on a loop device, mounted under bench/out for the run and
unmounted (and the loop device detached) at the end, on error or signal.

Why: hongyan's group commit ends each round with syncfs(2), which writes
back every dirty page of the filesystem the spool is on, the unrelated ones
included (another engineer's build on the same disk, our own logs); Postfix
fsyncs its one queue file per message and does not wait for anyone else's
data. On a shared filesystem the comparison would measure the neighbours.
"""
import os
import subprocess
import time

import bench as B


class SpoolFs:
    def __init__(self, size_gb=4):
        self.image = B.OUT / "spool.img"
        self.mnt = B.OUT / "spoolfs"
        self.size = "%dG" % size_gb
        self.dev = None
        self.mounted = False

    def _run(self, *cmd):
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd), (r.stderr or r.stdout).strip()))
        return r.stdout.strip()

    def setup(self):
        """Returns the mount point; raises if any step fails (after undoing
        the steps done)."""
        B._cleanups.append(self.teardown)
        self.teardown()  # left over from a run that was killed
        if self.image.exists():
            self.image.unlink()
        # A fresh, sparse image each run: the same empty filesystem for every run.
        self._run("truncate", "-s", self.size, str(self.image))
        self._run("mkfs.ext4", "-q", "-F", "-L", "hybench", str(self.image))
        self.dev = self._run("losetup", "--find", "--show", str(self.image))
        self.mnt.mkdir(parents=True, exist_ok=True)
        self._run("mount", "-t", "ext4", self.dev, str(self.mnt))
        self.mounted = True
        os.chmod(self.mnt, 0o755)
        return self.mnt

    def describe(self):
        return "ext4 on %s (%s image %s), mounted on %s" % (self.dev, self.size, self.image, self.mnt)

    def teardown(self):
        # Also whatever an earlier, killed run left mounted or attached.
        if self.mounted or os.path.ismount(self.mnt):
            for _ in range(20):
                if subprocess.run(["umount", str(self.mnt)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.5)
            else:
                subprocess.run(["umount", "-l", str(self.mnt)], capture_output=True)
            self.mounted = False
        if self.image.exists():
            r = subprocess.run(["losetup", "-j", str(self.image)], capture_output=True, text=True)
            for line in r.stdout.splitlines():
                subprocess.run(["losetup", "-d", line.split(":", 1)[0]], capture_output=True)
            self.image.unlink()
        self.dev = None
