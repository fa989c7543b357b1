#!/bin/bash
# Builds the test guest: the Debian 6.1 kernel (fetched with `apt-get download`,
# unpacked, never installed) and a small initramfs with busybox, the kernel's
# virtio/ext4 modules, mkfs.ext4, e2fsck, fio and blkdiscard, plus the scripts in guest/.
#
#   build_initramfs.sh            # fetch the kernel if needed, rebuild if inputs changed
#   FORCE=1 build_initramfs.sh    # rebuild anyway
#
# Env: WORK (default ${TMPDIR:-/tmp}/virtio-blk-guest)  OUT (default $WORK/out)
#      KPKG (kernel package; default the newest linux-image-6.1.0-*-amd64-unsigned apt knows)
# Produces $OUT/vmlinuz, $OUT/initramfs.cpio.gz, $OUT/kernel.version.
# Needs (Debian): busybox-static fio e2fsprogs kmod cpio xz-utils, apt lists (apt-get update).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-${TMPDIR:-/tmp}/virtio-blk-guest}
OUT=${OUT:-$WORK/out}
KROOT=$WORK/kernel
mkdir -p "$WORK" "$OUT"
# One build at a time per WORK (test runs in parallel processes share the cache).
exec 9>"$WORK/.build.lock"
flock 9

need() {
  for b in "$@"; do
    command -v "$b" >/dev/null || {
      echo "missing $b: apt-get install -y busybox-static fio e2fsprogs kmod cpio xz-utils" >&2; exit 1; }
  done
}
need busybox fio mkfs.ext4 e2fsck modprobe depmod cpio gzip ldd dpkg-deb apt-get flock
busybox --list | grep -x insmod >/dev/null || { echo "busybox has no insmod: install busybox-static" >&2; exit 1; }

# ---- 1. kernel: apt-get download + dpkg-deb -x (nothing is installed into /boot) ----
find_kernel_package() {
  apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64-unsigned$' 2>/dev/null |
    awk '{print $1}' | sort -V | tail -1
}
if [ ! -d "$KROOT/lib/modules" ]; then
  KPKG=${KPKG:-$(find_kernel_package)}
  if [ -z "$KPKG" ]; then
    # A machine whose apt lists were never fetched (or were cleaned).
    apt-get update -qq >/dev/null 2>&1 || true
    KPKG=$(find_kernel_package)
  fi
  [ -n "$KPKG" ] || { echo "no linux-image-6.1.0-*-amd64-unsigned package known to apt" >&2; exit 1; }
  echo "fetching $KPKG"
  rm -f "$WORK/$KPKG"_*.deb
  (cd "$WORK" && apt-get download "$KPKG" >/dev/null 2>&1 || apt-get download "$KPKG")
  rm -rf "$KROOT.tmp"
  dpkg-deb -x "$WORK/$KPKG"_*.deb "$KROOT.tmp"
  rm -f "$WORK/$KPKG"_*.deb
  mv "$KROOT.tmp" "$KROOT"
fi
KVER=$(ls "$KROOT/lib/modules" | sort -V | tail -1)
[ -f "$KROOT/lib/modules/$KVER/modules.dep" ] || depmod -b "$KROOT" "$KVER"
cp "$KROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
echo "$KVER" > "$OUT/kernel.version"

# ---- 2. skip when nothing changed ----
MODS="virtio_pci virtio_blk ext4 crc32c_generic crc32c_intel"
BINS="/usr/bin/fio /usr/sbin/mke2fs /usr/sbin/mkfs.ext4 /usr/sbin/e2fsck /usr/sbin/fsck.ext4 /usr/sbin/blkdiscard"
stamp=$( { echo "$KVER $MODS $BINS"; cat "$0" "$HERE"/guest/*; ls -l --time-style=+%s $(readlink -f $BINS /bin/busybox); } | sha256sum | cut -c1-16)
if [ -z "${FORCE:-}" ] && [ -s "$OUT/initramfs.cpio.gz" ] && [ "$(cat "$OUT/initramfs.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "up to date: $OUT/initramfs.cpio.gz ($KVER)"; exit 0
fi

# ---- 3. staging tree ----
S=$WORK/initramfs-root
rm -rf "$S"; mkdir -p "$S"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,mnt,run,root,lib/modules,guest}
cp /bin/busybox "$S/bin/busybox"
for a in $(busybox --list); do [ -e "$S/bin/$a" ] || ln -s busybox "$S/bin/$a"; done

# modules in dependency order (modprobe --show-depends follows modules.dep and softdeps)
: > "$S/lib/modules/load.order"
for m in $MODS; do
  modprobe -d "$KROOT" -S "$KVER" --show-depends "$m" | awk '$1=="insmod"{print $2}'
done | awk '!seen[$0]++' | while read -r ko; do
  b=$(basename "$ko"); cp "$ko" "$S/lib/modules/$b"; echo "$b" >> "$S/lib/modules/load.order"
done

# host binaries and their shared libraries (ldd), at the same paths as on the host
copy_with_libs() {
  local f
  for f in "$@"; do
    mkdir -p "$S$(dirname "$f")"; cp -L "$f" "$S$f"
    ldd "$f" 2>/dev/null | awk '/=>/ && $3 ~ /^\//{print $3} /^\t\/[^ ]+ \(/{print $1}' | while read -r l; do
      [ -e "$S$l" ] && continue
      mkdir -p "$S$(dirname "$l")"; cp -L "$l" "$S$l"
    done
  done
}
copy_with_libs $BINS
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$S/etc/"
# ld.so finds libraries outside the default dirs (fio's ceph libs) through this cache
printf '/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu\n/usr/lib/x86_64-linux-gnu/ceph\n' > "$S/etc/ld.so.conf"
ldconfig -r "$S" 2>/dev/null || true
echo "root:x:0:0:root:/root:/bin/sh" > "$S/etc/passwd"; echo "root:x:0:" > "$S/etc/group"

cp "$HERE/guest/init" "$S/init"; cp "$HERE"/guest/*.sh "$S/guest/"; chmod +x "$S/init" "$S"/guest/*.sh

# ---- 4. pack ----
(cd "$S" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 > "$OUT/initramfs.cpio.gz.tmp"
mv "$OUT/initramfs.cpio.gz.tmp" "$OUT/initramfs.cpio.gz"
echo "$stamp" > "$OUT/initramfs.stamp"
rm -rf "$S"
echo "built $OUT/initramfs.cpio.gz ($(du -h "$OUT/initramfs.cpio.gz" | cut -f1)) kernel $KVER"
