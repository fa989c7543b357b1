#!/bin/sh
# DISCARD and WRITE_ZEROES from Linux's own driver on $DEV (default /dev/vda):
# ext4 made without discarding, a 64 MiB file written, synced and deleted,
# then fstrim gives the free space back (the host sees the image's blocks
# freed); e2fsck is clean; blkdiscard -z zeros 1 MiB of random data at 96 MiB
# (read back with O_DIRECT); a plain blkdiscard of a range succeeds. On
# $RO_DEV (default /dev/vdb), a read-only disk, both blkdiscards fail.
# util-linux's blkdiscard: busybox's has no -z.
DEV=${DEV:-/dev/vda}; RO=${RO_DEV:-/dev/vdb}
# -f: the disk holds the ext4 made above, which blkdiscard would otherwise refuse to touch.
BLKDISCARD="/usr/sbin/blkdiscard -f"
fail() { echo "@@RESULT discard_check=FAIL step=$1"; exit 1; }
q=/sys/block/${DEV#/dev/}/queue
echo "@@RESULT discard_max_bytes=$(cat $q/discard_max_bytes) write_zeroes_max_bytes=$(cat $q/write_zeroes_max_bytes) ro_discard_max_bytes=$(cat /sys/block/${RO#/dev/}/queue/discard_max_bytes)"
mkfs.ext4 -q -F -E nodiscard "$DEV" || fail mkfs
mount -t ext4 "$DEV" /mnt || fail mount
dd if=/dev/urandom of=/mnt/big.bin bs=1M count=64 conv=fsync 2>/dev/null || fail write
rm /mnt/big.bin && sync || fail delete
trimmed=$(fstrim -v /mnt) || fail fstrim
umount /mnt || fail umount
e2fsck -fn "$DEV" >/dev/null 2>&1 || fail e2fsck
dd if=/dev/urandom of="$DEV" bs=1M seek=96 count=1 oflag=direct 2>/dev/null || fail write-raw
$BLKDISCARD -z -o $((96 << 20)) -l $((1 << 20)) "$DEV" || fail zeroout
left=$(dd if="$DEV" bs=1M skip=96 count=1 iflag=direct 2>/dev/null | tr -d '\000' | wc -c)
[ "$left" -eq 0 ] || fail "zeroout-left-$left-bytes"
$BLKDISCARD -o $((100 << 20)) -l $((1 << 20)) "$DEV" || fail discard-range
$BLKDISCARD "$RO" 2>/dev/null && fail ro-discard-accepted
$BLKDISCARD -z "$RO" 2>/dev/null && fail ro-zeroout-accepted
echo "@@RESULT discard_check=PASS fstrim=$(echo "$trimmed" | tr ' ' _)"
