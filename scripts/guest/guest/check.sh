#!/bin/sh
# File system check on $DEV (default /dev/vda): mkfs.ext4, mount, write
# files of known content, checksum them, umount, e2fsck -fn, drop caches,
# remount, verify. Prints '@@RESULT file=NAME sha256=…' for the host to
# compare with debugfs, and '@@RESULT check=PASS|FAIL'.
DEV=${DEV:-/dev/vda}
fail() { echo "@@RESULT check=FAIL step=$1"; exit 1; }
[ -b "$DEV" ] || fail "no-$DEV"
mkfs.ext4 -q -F "$DEV" || fail mkfs
mount -t ext4 "$DEV" /mnt || fail mount
mkdir -p /mnt/dir
dd if=/dev/urandom of=/mnt/random.bin bs=1M count=${MB:-16} 2>/dev/null || fail write-random
dd if=/dev/urandom of=/mnt/dir/small.bin bs=4096 count=3 2>/dev/null || fail write-small
i=0; while [ $i -lt 2000 ]; do echo "line $i of a text file written by the guest"; i=$((i+1)); done > /mnt/dir/text.txt || fail write-text
sync
for f in random.bin dir/small.bin dir/text.txt; do
  echo "$(sha256sum /mnt/$f | cut -d' ' -f1) $f"
done > /tmp/sums
umount /mnt || fail umount
e2fsck -fn "$DEV" >/tmp/fsck.log 2>&1; fr=$?
[ $fr -eq 0 ] || { sed 's/^/@@FSCK /' /tmp/fsck.log; fail "e2fsck rc=$fr"; }
echo 3 > /proc/sys/vm/drop_caches
mount -t ext4 "$DEV" /mnt || fail remount
while read -r sum f; do
  now=$(sha256sum /mnt/$f | cut -d' ' -f1)
  [ "$now" = "$sum" ] || fail "checksum-$f"
  echo "@@RESULT file=$f sha256=$sum"
done < /tmp/sums
umount /mnt || fail umount2
echo "@@RESULT check=PASS e2fsck_rc=$fr"
