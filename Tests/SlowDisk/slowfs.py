"""A FUSE passthrough whose fsync takes `delay` seconds: a disk slow to make data durable.

Everything else goes straight to the directory underneath. `fsyncs_started` counts the fsyncs
of files begun so far, so a test can tell when the daemon is storing.
"""
import errno
import os
import threading
import time

from mfusepy import FUSE, FuseOSError, Operations


class SlowFsync(Operations):
    use_ns = True

    def __init__(self, root, delay):
        self.root = root
        self.delay = delay
        self.fsyncs_started = 0
        self.lock = threading.Lock()

    def _path(self, path):
        return os.path.join(self.root, path.lstrip("/"))

    def _call(self, function, *arguments):
        try:
            return function(*arguments)
        except OSError as error:
            raise FuseOSError(error.errno) from error

    def access(self, path, amode):
        if not os.access(self._path(path), amode):
            raise FuseOSError(errno.EACCES)
        return 0

    def getattr(self, path, fh=None):
        st = self._call(os.fstat, fh) if fh is not None else self._call(os.lstat, self._path(path))
        attributes = {key: getattr(st, key) for key in ("st_gid", "st_uid", "st_mode", "st_nlink", "st_size")}
        attributes.update({key: getattr(st, key + "_ns") for key in ("st_atime", "st_ctime", "st_mtime")})
        return attributes

    def readdir(self, path, fh):
        return [".", ".."] + self._call(os.listdir, self._path(path))

    def readlink(self, path):
        return self._call(os.readlink, self._path(path))

    def mkdir(self, path, mode):
        return self._call(os.mkdir, self._path(path), mode)

    def rmdir(self, path):
        return self._call(os.rmdir, self._path(path))

    def unlink(self, path):
        return self._call(os.unlink, self._path(path))

    def rename(self, old, new):
        return self._call(os.rename, self._path(old), self._path(new))

    def chmod(self, path, mode):
        return self._call(os.chmod, self._path(path), mode)

    def chown(self, path, uid, gid):
        return self._call(os.chown, self._path(path), uid, gid)

    def truncate(self, path, length, fh=None):
        return self._call(os.truncate, fh if fh is not None else self._path(path), length)

    def utimens(self, path, times=None):
        return self._call(lambda: os.utime(self._path(path), ns=times) if times else os.utime(self._path(path)))

    def statfs(self, path):
        st = self._call(os.statvfs, self._path(path))
        return {key: getattr(st, key) for key in ("f_bavail", "f_bfree", "f_blocks", "f_bsize", "f_favail", "f_ffree",
                                                  "f_files", "f_flag", "f_frsize", "f_namemax")}

    def open(self, path, flags):
        return self._call(os.open, self._path(path), flags)

    def create(self, path, mode, flags):
        return self._call(os.open, self._path(path), flags | os.O_CREAT, mode)

    def read(self, path, size, offset, fh):
        return self._call(os.pread, fh, size, offset)

    def write(self, path, data, offset, fh):
        return self._call(os.pwrite, fh, data, offset)

    def flush(self, path, fh):
        return 0

    def release(self, path, fh):
        return self._call(os.close, fh)

    def fsync(self, path, datasync, fh):
        with self.lock:
            self.fsyncs_started += 1
        time.sleep(self.delay)
        return self._call(os.fsync, fh)

    def fsyncdir(self, path, datasync, fh):
        return 0


def mount(root, mountpoint, delay):
    """Mounts in a daemon thread; returns the operations (unmount with fusermount3 -u)."""
    operations = SlowFsync(root, delay)
    thread = threading.Thread(target=FUSE, args=(operations, mountpoint),
                              kwargs={"foreground": True, "allow_other": True, "nothreads": False}, daemon=True)
    thread.start()
    for _ in range(200):
        if os.path.ismount(mountpoint):
            return operations
        time.sleep(0.05)
    raise RuntimeError(f"the FUSE file system did not mount on {mountpoint}")
