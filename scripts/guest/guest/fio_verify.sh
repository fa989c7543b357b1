#!/bin/sh
# fio random writes at queue depth 32 with crc32c verification of every
# block (written, then read back and checked). Env: DEV (/dev/vda),
# FIO_SIZE (32M), FIO_BS (4k).
DEV=${DEV:-/dev/vda}
out=$(fio --name=verify --filename="$DEV" --rw=randwrite --bs=${FIO_BS:-4k} --iodepth=32 \
  --ioengine=libaio --direct=1 --size=${FIO_SIZE:-32M} --verify=crc32c --do_verify=1 \
  --verify_fatal=1 --randrepeat=0 --output-format=terse 2>&1)
rc=$?
line=$(echo "$out" | grep '^3;' | head -1)
errors=$(echo "$line" | cut -d';' -f5)
if [ $rc -eq 0 ] && [ "$errors" = 0 ]; then
  echo "@@RESULT fio_verify=PASS size=${FIO_SIZE:-32M} write_iops=$(echo "$line" | cut -d';' -f49)"
else
  echo "$out" | tail -15 | sed 's/^/@@FIO /'
  echo "@@RESULT fio_verify=FAIL rc=$rc errors=$errors"
  exit 1
fi
