#!/bin/sh
# Multiqueue as the guest sees it: the blk-mq hardware queues of $DEV
# (/sys/block/vda/mq/N), then one fio verify job per CPU, each pinned to its
# own CPU (so each submits on the queue of its CPU) on a region of its own,
# then the interrupts each request queue raised (MSI-X vectors
# virtioN-req.Q in /proc/interrupts). Env: DEV (/dev/vda), FIO_SIZE per job
# (16M), FIO_BS (4k).
DEV=${DEV:-/dev/vda}
name=$(basename "$DEV")
queues=$(ls -d /sys/block/"$name"/mq/*/ 2>/dev/null | wc -l)
cpus=$(grep -c '^processor' /proc/cpuinfo)
echo "@@RESULT mq_queues=$queues cpus=$cpus"
size=${FIO_SIZE:-16M}
out=$(fio --name=mq --filename="$DEV" --rw=randwrite --bs=${FIO_BS:-4k} --iodepth=16 \
  --ioengine=libaio --direct=1 --size="$size" --offset_increment="$size" --numjobs="$cpus" \
  --cpus_allowed=0-$((cpus - 1)) --cpus_allowed_policy=split --verify=crc32c --do_verify=1 \
  --verify_fatal=1 --randrepeat=0 --group_reporting --output-format=terse 2>&1)
rc=$?
line=$(echo "$out" | grep '^3;' | head -1)
errors=$(echo "$line" | cut -d';' -f5)
# Interrupts per request queue: the sum of the per-CPU counts of each virtio*-req.Q line.
grep -- '-req\.' /proc/interrupts | awk '{ n = 0; for (i = 2; i <= NF; i++) { if ($i ~ /^[0-9]+$/) n += $i; else break }
  q = $NF; sub(/.*-req\./, "", q); print "@@RESULT queue=" q " interrupts=" n }'
if [ $rc -eq 0 ] && [ "$errors" = 0 ]; then
  echo "@@RESULT mq_fio=PASS jobs=$cpus size=$size"
else
  echo "$out" | tail -15 | sed 's/^/@@FIO /'
  echo "@@RESULT mq_fio=FAIL rc=$rc errors=$errors"
  exit 1
fi
