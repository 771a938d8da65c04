#!/usr/bin/env python3
"""A FUSE file system (fusepy, on libfuse2) whose one file opens at once but
whose reads wait: a user's FUSE mount answering open(2) and hanging read(2),
as a hostile or broken one may. Every read waits until the file RELEASE exists
beside the mount point (the test creates it), then answers with CONTENTS.

usage: slow_read_fs.py MOUNTPOINT CONTENTS_FILE RELEASE_FILE
The single file is MOUNTPOINT/authorized_keys (0644, root's, CONTENTS' size).
Prints READY once mounted and READ-WAITING when a read has started waiting;
runs in the foreground until unmounted (fusermount -u or umount).
"""
import errno
import os
import stat
import sys
import time

from fusepy import FUSE, FuseOSError, Operations


class SlowRead(Operations):
    def __init__(self, contents, release_file):
        self.contents = contents
        self.release_file = release_file
        self.started = time.time()

    def getattr(self, path, fh=None):
        now = self.started
        if path == "/":
            return dict(st_mode=stat.S_IFDIR | 0o755, st_nlink=2, st_uid=0, st_gid=0, st_atime=now, st_mtime=now, st_ctime=now)
        if path == "/authorized_keys":
            return dict(
                st_mode=stat.S_IFREG | 0o644, st_nlink=1, st_uid=0, st_gid=0, st_size=len(self.contents),
                st_atime=now, st_mtime=now, st_ctime=now)
        raise FuseOSError(errno.ENOENT)

    def readdir(self, path, fh):
        return [".", "..", "authorized_keys"]

    def open(self, path, flags):
        if path != "/authorized_keys":
            raise FuseOSError(errno.ENOENT)
        return 0

    def read(self, path, size, offset, fh):
        print("READ-WAITING", flush=True)
        while not os.path.exists(self.release_file):
            time.sleep(0.05)
        return self.contents[offset:offset + size]

    def init(self, path):
        print("READY", flush=True)


def main():
    mountpoint, contents_file, release = sys.argv[1], sys.argv[2], sys.argv[3]
    with open(contents_file, "rb") as f:
        contents = f.read()
    # direct_io: every read reaches read() above, none is served from the page cache.
    FUSE(SlowRead(contents, release), mountpoint, foreground=True, nothreads=False, allow_other=True, direct_io=True)


if __name__ == "__main__":
    main()
