#!/bin/sh
# A disk that is a window of an image ($RANGE_DEV, default /dev/vda): fills the
# whole device with a pattern the host can recompute, reads it back.
DEV=${RANGE_DEV:-/dev/vda}
fail() { echo "@@RESULT range_check=FAIL step=$1"; exit 1; }
size=$(blockdev --getsize64 $DEV)
# 'Z' (0x5a) bytes over the whole device, written direct so they reach the device
dd if=/dev/zero bs=65536 count=$((size / 65536)) 2>/dev/null | tr '\000' 'Z' > /tmp/pattern || fail pattern
dd if=/tmp/pattern of=$DEV bs=65536 oflag=direct 2>/dev/null || fail write
echo 3 > /proc/sys/vm/drop_caches
sha=$(dd if=$DEV bs=64k iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)
echo "@@RESULT range_check=PASS size_bytes=$size sha256=$sha"
