"""test_views.py - -o views= and the table of view kinds (SPEC.md "Other
views", README "Views"): which views a mount shows, the option's errors,
txt-less mounts, and the rules every view follows alike: a real member
wins over a view's name, rm and mv of any view name act on the array, a
view of an array with no form for it is hidden, views follow the archive
when another program rewrites it."""
import errno
import os

import numpy as np
import pytest

from conftest import SLOW, poll, run_npzfs
from writeutil import (Snapshot, check_archive, close_errno, load_archive,
                       make_archive, read, render, run, write_file)
import archives


def arrays():
    return {"x": np.array([1.5, -2.0]), "m": np.arange(6).reshape(2, 3),
            "t": np.zeros((2, 2, 2)), "z": np.array(3.0),
            "o": np.array([1, None], dtype=object)}


@pytest.fixture
def archive(tmp_path):
    return make_archive(tmp_path / "v.npz", "stored", arrays())


def names(m):
    return sorted(os.listdir(m))


def test_default_is_txt(archive, mount):
    m = mount(archive)
    assert names(m) == ["m.npy", "m.txt", "o.npy", "t.npy", "t.txt", "x.npy",
                        "x.txt", "z.npy", "z.txt"]
    assert not os.path.exists(m / "x.csv")


def test_txt_and_csv(archive, mount):
    """CSV views only for 1-d and 2-d arrays (not 0-d, 3-d, objects)."""
    m = mount(archive, "-o", "views=txt,csv")
    assert names(m) == ["m.csv", "m.npy", "m.txt", "o.npy", "t.npy", "t.txt",
                        "x.csv", "x.npy", "x.txt", "z.npy", "z.txt"]
    assert read(m / "x.csv") == b"1.5\n-2.0\n"
    assert not os.path.exists(m / "t.csv")
    assert os.stat(m / "m.csv").st_size == len(b"0,1,2\n3,4,5\n")


def test_views_as_separate_options(archive, mount):
    """-o views=csv -o txt: names after views= add to it."""
    m = mount(archive, "-o", "views=csv", "-o", "txt")
    assert os.path.exists(m / "x.txt") and os.path.exists(m / "x.csv")


def test_csv_without_txt(archive, mount):
    """views=csv: no text views; NAME.txt is then an ordinary (scratch)
    name, and the CSV view is edited as usual."""
    m = mount(archive, "-o", "views=csv")
    assert names(m) == ["m.csv", "m.npy", "o.npy", "t.npy", "x.csv", "x.npy",
                        "z.npy"]
    write_file(m / "x.csv", b"7\n8\n9\n")
    assert load_archive(archive)["x"].tolist() == [7.0, 8.0, 9.0]
    write_file(m / "notes.txt", b"not an array\n")
    assert read(m / "notes.txt") == b"not an array\n"
    assert "notes.txt" not in load_archive(archive)


def test_no_views(archive, mount):
    m = mount(archive, "-o", "views=")
    assert names(m) == ["m.npy", "o.npy", "t.npy", "x.npy", "z.npy"]


def test_png_only_for_2d_numbers(archive, mount):
    """views=txt,png: NAME.png for the 2-d array of numbers alone (a
    heatmap here: int64), none for 0-d, 1-d, 3-d or objects."""
    m = mount(archive, "-o", "views=txt,png")
    assert [n for n in names(m) if n.endswith(".png")] == ["m.png"]


@pytest.mark.parametrize("opts, word, lines", [
    ("views=xls", "xls", 1), ("views=csv;txt", "csv;txt", 1), ("csv", "csv", 1),
    # a word after "views=txt," is an option of its own: libfuse's unknown
    # option, and npzfs's "bad options" line after it
    ("views=txt,xls", "xls", 2),
])
def test_unknown_view_refused(archive, tmp_path, opts, word, lines):
    """A line on stderr naming the word, exit status 1, nothing mounted."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = run_npzfs("-f", "-o", opts, archive, mnt)
    err = r.stderr.decode()
    assert r.returncode == 1
    assert word in err and len(err.strip().splitlines()) == lines, err
    assert not os.path.ismount(mnt)


def test_member_wins_over_view(tmp_path, mount):
    """A real member x.csv is shown as itself, not as x.npy's CSV view."""
    a = tmp_path / "w.npz"
    make_archive(a, "stored", {"x": np.array([1, 2])})
    import zipfile
    with zipfile.ZipFile(a, "a") as z:
        z.writestr("x.csv", "mine\n")
    m = mount(a, "-o", "views=txt,csv")
    assert read(m / "x.csv") == b"mine\n"
    assert read(m / "x.txt").startswith(b"# ")


def test_member_added_by_another_program_wins_over_view(tmp_path, mount):
    """Another program adds a member y.csv while the mount shows y.npy's
    CSV view there: after the reload the member is shown, not the view."""
    a = tmp_path / "w.npz"
    make_archive(a, "stored", {"y": np.array([1, 2])})
    m = mount(a, "-o", "views=txt,csv")
    assert read(m / "y.csv") == b"1\n2\n"
    import zipfile
    with zipfile.ZipFile(a, "a") as z:
        z.writestr("y.csv", "theirs\n")

    def shows_member():
        try:
            return read(m / "y.csv") == b"theirs\n"
        except OSError:
            return False
    assert poll(shows_member, 3 * SLOW), m.stderr()
    assert read(m / "y.txt").startswith(b"# ")
    assert "clashes" not in m.stderr()


def test_rm_any_view_removes_the_array(archive, mount):
    m = mount(archive, "-o", "views=txt,csv")
    os.unlink(m / "x.csv")
    assert "x" not in load_archive(archive)
    assert names(m) == ["m.csv", "m.npy", "m.txt", "o.npy", "t.npy", "t.txt",
                        "z.npy", "z.txt"]


def test_rm_all_names_and_rm_r(archive, mount):
    """rm m.npy m.txt m.csv, rm -r of a directory of arrays: the views go
    with their array, and their own unlinks succeed."""
    m = mount(archive, "-o", "views=txt,csv")
    run(["ls", "-l", m.path])
    run(["rm", m / "m.npy", m / "m.txt", m / "m.csv"])
    assert "m" not in load_archive(archive)
    os.mkdir(m / "sub")
    for n in ("a", "b"):
        np.save(m / "sub" / (n + ".npy"), np.arange(3))
    assert sorted(os.listdir(m / "sub")) == ["a.csv", "a.npy", "a.txt",
                                             "b.csv", "b.npy", "b.txt"]
    run(["rm", "-r", m / "sub"])
    assert not (m / "sub").exists()
    assert not any(k.startswith("sub/") for k in load_archive(archive))


def test_mv_csv_renames_the_array(archive, mount):
    m = mount(archive, "-o", "views=txt,csv")
    os.rename(m / "m.csv", m / "n.csv")
    got = load_archive(archive)
    assert "m" not in got and got["n"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert {"n.npy", "n.txt", "n.csv"} <= set(names(m))
    assert not os.path.exists(m / "m.csv")


def test_mv_csv_out_keeps_the_array(archive, mount):
    """mv x.csv x.csv~ (an editor's backup) moves the CSV out to a scratch
    file; the array stays."""
    m = mount(archive, "-o", "views=txt,csv")
    os.rename(m / "x.csv", m / "x.csv~")
    assert read(m / "x.csv~") == b"1.5\n-2.0\n"
    assert load_archive(archive)["x"].tolist() == [1.5, -2.0]
    assert read(m / "x.csv") == b"1.5\n-2.0\n"


def test_hidden_view_cannot_be_created(archive, mount):
    """t is 3-d: no t.csv, and creating one is refused (EPERM), reported."""
    m = mount(archive, "-o", "views=txt,csv")
    with pytest.raises(OSError) as e:
        open(m / "t.csv", "w")
    assert e.value.errno == errno.EPERM
    assert "no CSV view" in os.getxattr(m / "t.npy", "user.npzfs.error").decode()


def test_new_csv_needs_an_array(archive, mount):
    """A new NAME.csv has no dtype to take: refused at close (EINVAL)."""
    m = mount(archive, "-o", "views=txt,csv")
    before = Snapshot(archive)
    assert close_errno(m / "new.csv", b"1,2\n", os.O_WRONLY | os.O_CREAT) == errno.EINVAL
    check_archive(archive, before)


def test_views_follow_commits_and_other_programs(archive, mount):
    """An edit through one view shows in the others; another program's
    rewrite of the archive shows in every view."""
    m = mount(archive, "-o", "views=txt,csv")
    assert read(m / "x.csv") == b"1.5\n-2.0\n"
    write_file(m / "x.txt", b"4\n5\n6\n")
    assert read(m / "x.csv") == b"4.0\n5.0\n6.0\n"
    assert os.stat(m / "x.csv").st_size == 12
    new = arrays()
    new["x"] = np.array([0.25])
    archives.savez(str(archive) + ".tmp.npz", new, "stored")
    os.replace(str(archive) + ".tmp.npz", archive)

    def shows_new():
        # a view opened just before the reload and read after it fails
        # with EIO (SPEC: an open view whose array changed): read again
        try:
            return read(m / "x.csv") == b"0.25\n"
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            return False
    assert poll(shows_new, 5)
    assert read(m / "x.txt") == render(new["x"]).encode()
