#!/bin/sh
# A read-only disk ($RO_DEV, default /dev/vda): the kernel sees it read-only,
# a buffered write is refused, and a direct write forced past the kernel's
# flag (blockdev --setrw) fails at the device. Reads work.
DEV=${RO_DEV:-/dev/vda}
fail() { echo "@@RESULT ro_check=FAIL step=$1"; exit 1; }
[ "$(blockdev --getro $DEV)" = 1 ] || fail "not-read-only"
dd if=$DEV of=/dev/null bs=64k count=16 2>/dev/null || fail read
dd if=/dev/zero of=$DEV bs=4096 count=1 2>/dev/null && fail "write-accepted"
blockdev --setrw $DEV 2>/dev/null
dd if=/dev/zero of=$DEV bs=4096 count=1 oflag=direct 2>/dev/null && fail "direct-write-accepted"
sha=$(dd if=$DEV bs=1M 2>/dev/null | sha256sum | cut -d' ' -f1)
echo "@@RESULT ro_check=PASS sha256=$sha"
