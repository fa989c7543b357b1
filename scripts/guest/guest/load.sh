#!/bin/sh
# Keeps the disk busy: random 4 KiB writes at queue depth 32 for LOAD_SECONDS
# (default 60), for a host that kills QEMU in the middle of it.
DEV=${DEV:-/dev/vda}
echo "@@RESULT load=started"
fio --name=load --filename="$DEV" --rw=randwrite --bs=4k --iodepth=32 --ioengine=libaio \
  --direct=1 --size=${LOAD_SIZE:-64M} --time_based --runtime=${LOAD_SECONDS:-60} \
  --output-format=terse >/dev/null 2>&1
echo "@@RESULT load=finished"
