#!/bin/sh
# sozip-edit-bench.sh - how long a one-value edit of a big SOZip member takes
# until the archive holds it: np.load(mmap_mode='r+'), one value written,
# flush() (msync: the commit), on a reflink XFS (loop-mounted image) and on
# the filesystem of WORK (ext4 here), against `cp archive x; sync` there.
# Not a test: prints the numbers.  Needs root (loop mount), mkfs.xfs,
# /usr/bin/python3 with numpy, build/npzfs.
#
# usage: scripts/sozip-edit-bench.sh [MiB of the member, default 1024]
#        WORK=/var/tmp NPZFS=build/npzfs NPZFS_WRAP="strace -f -T -o FILE" (the XFS edits' daemon)
#        XFS_ONLY=1 (skip the work directory's filesystem)
set -eu

MIB=${1:-1024}
WORK=${WORK:-/var/tmp}
NPZFS=$(realpath "${NPZFS:-build/npzfs}")
PY=/usr/bin/python3
dir=$(mktemp -d "$WORK/sozip-edit-bench.XXXXXX")
img=$dir/xfs.img
xfs=$dir/xfs
mnt=$dir/mnt
mkdir -p "$xfs" "$mnt"

cleanup() {
	fusermount3 -u "$mnt" 2>/dev/null || true
	umount "$xfs" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT INT TERM

mount_npzfs() {	# archive [wrap]: the daemon in the background, until mounted
	${2:-} "$NPZFS" -f "$1" "$mnt" 2>>"$dir/npzfs.log" &
	i=0
	while ! mountpoint -q "$mnt"; do
		i=$((i + 1))
		[ $i -lt 500 ] || { echo "npzfs did not mount" >&2; exit 1; }
		sleep 0.02
	done
}

unmount_npzfs() {
	fusermount3 -u "$mnt"
	wait
}

truncate -s $((3 * MIB + 1024))M "$img"
mkfs.xfs -q -m reflink=1 "$img"
mount -o loop "$img" "$xfs"

echo "making a $MIB MiB float32 member (np.round(normal, 2)) ..."
$PY - "$xfs" "$MIB" <<'EOF'
import sys
import numpy as np
d, mib = sys.argv[1], int(sys.argv[2])
n = mib << 18
a = np.empty(n, dtype=np.float32)
rng = np.random.default_rng(1)
step = 1 << 24
for i in range(0, n, step):
    a[i:i + step] = np.round(rng.standard_normal(min(step, n - i)), 2)
np.save(d + "/big.npy", a)
np.savez_compressed(d + "/a.npz", small=np.arange(10.0))
EOF
mount_npzfs "$xfs/a.npz"
start=$(date +%s.%N)
cp "$xfs/big.npy" "$mnt/"
end=$(date +%s.%N)
unmount_npzfs
rm "$xfs/big.npy"
echo "cp into the mount (deflated as SOZip, on XFS): $(echo "$end - $start" | bc) s"

EDIT='
import sys, time
import numpy as np
t0 = time.monotonic()
a = np.load(sys.argv[1], mmap_mode="r+")
i = len(a) // 2 + 12345 * int(sys.argv[2])
a[i] = 42.25
t = time.monotonic()
a.flush()
t1 = time.monotonic()
del a
print("flush (the commit) %.3f s, open to close %.3f s" % (t1 - t, time.monotonic() - t0))
'

edit() {	# fs-name archive [wrap]: three edits in one mount
	mount_npzfs "$2" "${3:-}"
	for k in 1 2 3; do
		start=$(date +%s.%N)
		times=$($PY -c "$EDIT" "$mnt/big.npy" $k)
		end=$(date +%s.%N)
		echo "$1: one-value mmap edit $k: $times; with python's start $(echo "$end - $start" | bc) s"
	done
	unmount_npzfs
}

edit XFS "$xfs/a.npz" "${NPZFS_WRAP:-}"
$PY -c "import zipfile, sys; z = zipfile.ZipFile(sys.argv[1]); print('XFS archive:', z.getinfo('big.npy').compress_size, 'compressed bytes')" "$xfs/a.npz"

[ "${XFS_ONLY:-0}" = 1 ] && exit 0
# the filesystem of WORK
cp "$xfs/a.npz" "$dir/a.npz"
sync
start=$(date +%s.%N)
cp "$dir/a.npz" "$dir/x.npz"
sync
end=$(date +%s.%N)
rm "$dir/x.npz"
echo "$(stat -f -c %T "$dir"): cp archive x; sync: $(echo "$end - $start" | bc) s"
edit "$(stat -f -c %T "$dir")" "$dir/a.npz"
grep -h "commits\|compaction" "$dir/npzfs.log" | sort | uniq -c || true
