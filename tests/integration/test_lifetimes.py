"""test_lifetimes.py - an archive a commit replaced is closed as soon as no
zero-copy reply can still splice from it (issue 9, "Lifetimes by reference
count").

A read of a stored member is answered by splice from the archive's
descriptor after the daemon's callback returned: the worker thread keeps a
reference on that archive version until it starts its next request.  So
the daemon holds at most one replaced archive per worker thread that has
not served a request since the commit:
 - with -s, none: its one thread serves the edit's own requests;
 - with -o max_threads=2, at most 2, whichever threads served what (and
   0 is what we see: the threads that spliced serve the later requests).
The daemon's reaper thread closes a replaced archive right after its
commit (closing a big deleted file takes a while, and no request should
wait for it): the count is polled for at most CLOSE_WITHIN seconds.  The
2-second timer it replaces kept every version replaced in the last two
seconds open (and looked at its timer only when a request came): 1, 2,
... 6 deleted archives after 6 quick edits.
"""
import os

import numpy as np
import pytest

from conftest import poll
from writeutil import npy_bytes, unmount, write_file

BIG = 8 << 20          # float64 items: 64 MiB
EDITS = 6
MAX_THREADS = 2
CLOSE_WITHIN = 1.5     # seconds; the old timer needed 2 and a request


def deleted_archives(pid, archive):
    """How many of the daemon's descriptors are the archive's replaced
    versions: links to "ARCHIVE (deleted)"."""
    want = os.path.realpath(archive) + " (deleted)"
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)) == want
        except OSError:
            pass                # closed meanwhile
    return n


def other_requests(mnt):
    """A few requests that are not zero-copy reads: stat, a listing, a few
    bytes of the small array's text view (rendered, never spliced)."""
    os.stat(mnt / "big.npy")
    os.listdir(mnt.path)
    with open(mnt / "params.txt", "rb") as f:
        f.read(4)


@pytest.mark.parametrize("opts", [["-s"], ["-o", "max_threads=%d" % MAX_THREADS]],
                         ids=["single-thread", "max-threads-2"])
def test_replaced_archives_closed(tmp_path, mount, opts):
    archive = tmp_path / "a.npz"
    big = np.arange(BIG, dtype=np.float64)
    np.savez(archive, big=big, params=np.zeros(4))      # stored members
    m = mount(archive, *opts)
    bound = 0 if "-s" in opts else MAX_THREADS
    seen = []
    for i in range(1, EDITS + 1):
        assert np.array_equal(np.load(m / "big.npy"), big)      # spliced
        write_file(m / "params.npy", npy_bytes(np.full(4, float(i))))
        other_requests(m)
        poll(lambda: deleted_archives(m.proc.pid, archive) <= bound, CLOSE_WITHIN)
        seen.append(deleted_archives(m.proc.pid, archive))
        assert seen[-1] <= bound, "replaced archives still open after each edit: %s" % seen
    assert np.array_equal(np.load(m / "params.npy"), np.full(4, float(EDITS)))
    print("replaced archives still open after each edit:", seen)
    unmount(m)
