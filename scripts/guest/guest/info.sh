#!/bin/sh
# Prints what the guest sees of each virtio disk: size, read-only flag,
# cache type, virtio features and PCI identity.
for dev in /sys/block/vd*; do
  [ -e "$dev" ] || continue
  name=$(basename "$dev")
  echo "@@RESULT disk=$name size_bytes=$(blockdev --getsize64 /dev/$name) ro=$(blockdev --getro /dev/$name) cache_type=$(cat $dev/cache_type 2>/dev/null | tr ' ' _)"
done
for f in /sys/bus/virtio/devices/*; do
  echo "@@INFO virtio $(basename $f) device=$(cat $f/device) features=$(cat $f/features)"
done
for f in /sys/bus/pci/devices/*; do
  [ "$(cat $f/vendor)" = 0x1af4 ] && echo "@@RESULT pci=$(basename $f) device=$(cat $f/device)"
done
exit 0
