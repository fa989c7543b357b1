#!/bin/sh
# Online resize ($RESIZE_DEV, default vda): the host changes the disk's size
# (QMP block_resize) while this runs; the guest must see each change in
# /sys/block/DEV/size (512-byte sectors), which its virtio_blk driver updates
# at the configuration-change interrupt, with no reboot and no rescan.
# Prints the size at the start ('resize_step=0'), then waits for each of
# $RESIZE_STEPS changes (default 2, up to $RESIZE_WAIT seconds each, default
# 120) and prints the new size. At each: the new last sector is read; past it
# nothing is; and the new last sector is written with 'resized-N' (direct),
# which the host can find in its file at the offset of the guest's end.
DEV=${RESIZE_DEV:-vda}
STEPS=${RESIZE_STEPS:-2}
WAIT=${RESIZE_WAIT:-120}
fail() { echo "@@RESULT resize_check=FAIL step=$1 sectors=$(cat /sys/block/$DEV/size)"; exit 1; }
last=$(cat /sys/block/$DEV/size)
echo "@@RESULT resize_step=0 sectors=$last"
step=1
while [ $step -le $STEPS ]; do
  waited=0
  while [ "$(cat /sys/block/$DEV/size)" = "$last" ]; do
    [ $waited -lt $WAIT ] || fail "no-change-$step"
    sleep 1; waited=$((waited + 1))
  done
  last=$(cat /sys/block/$DEV/size)
  bytes=$(blockdev --getsize64 /dev/$DEV)
  [ "$bytes" = $((last * 512)) ] || fail "getsize64-$step"
  dd if=/dev/$DEV of=/dev/null bs=512 skip=$((last - 1)) count=1 iflag=direct 2>/dev/null ||
    fail "last-read-$step"
  past=$(dd if=/dev/$DEV bs=512 skip=$last count=1 iflag=direct 2>/dev/null | wc -c)
  [ "$past" = 0 ] || fail "read-past-end-$step"
  printf 'resized-%s' $step | dd of=/dev/$DEV bs=512 seek=$((last - 1)) count=1 conv=sync \
    oflag=direct 2>/dev/null || fail "last-write-$step"
  echo "@@RESULT resize_step=$step sectors=$last"
  step=$((step + 1))
done
echo "@@RESULT resize_check=PASS"
