#!/bin/bash
# Boots the test guest (see build_initramfs.sh) under QEMU with one or more
# virtio-blk disks (vda, vdb, … in order) and runs guest scripts.
#
#   boot.sh [options] --disk KIND:ARG [--disk …]
#     --disk vhost:SOCK     vhost-user-blk-pci on a back end listening on SOCK (ours)
#     --disk qsd:IMG        vhost-user-blk-pci served by qemu-storage-daemon on IMG
#                           (aio=threads, cache.direct=on)
#     --disk qsd-uring:IMG  the same with qemu-storage-daemon's aio=io_uring
#     --disk qsd-cache:IMG, qsd-uring-cache:IMG
#                           the same through the page cache (cache.direct=off)
#     --disk builtin:IMG    QEMU's own virtio-blk-pci on IMG
#     --legacy on|off       on: disable-modern=on (virtio 0.9.5, PCI 1af4:1001)
#                           off (default): modern only (1af4:1042)
#     --run a.sh,b.sh       guest scripts from guest/ (default check.sh), or 'shell'
#     --arg K=V             extra kernel argument; g_NAME=V becomes env NAME=V in the guest
#     --accel tcg|kvm (tcg: KVM does not start a guest on these machines)
#     --smp N (1)  --mem MiB (512)  --timeout SEC (300)  --queue-size N (QEMU default)
#     --num-queues N (1)    request queues of every disk (QEMU's num-queues)
#     --pidfile FILE        QEMU writes its pid there (to kill it mid-run)
# Env: WORK / OUT as for build_initramfs.sh.
# Output: the guest console on stdout, then '@@BOOT … rc=N'. Exit status: the
# guest scripts' rc ('@@END rc=N'), 124 on timeout, 99 if the guest never ended.
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${WORK:-${TMPDIR:-/tmp}/virtio-blk-guest}; OUT=${OUT:-$WORK/out}
LEGACY=off; RUN=check.sh; ACCEL=tcg; SMP=1; MEM=512; TIMEOUT=300; QUEUE=""; PIDFILE=""; QUEUES=1
DISKS=(); EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --disk) DISKS+=("$2"); shift 2 ;;     --legacy) LEGACY=$2; shift 2 ;;
    --run) RUN=$2; shift 2 ;;             --arg) EXTRA+=("$2"); shift 2 ;;
    --accel) ACCEL=$2; shift 2 ;;         --smp) SMP=$2; shift 2 ;;
    --mem) MEM=$2; shift 2 ;;             --timeout) TIMEOUT=$2; shift 2 ;;
    --queue-size) QUEUE=$2; shift 2 ;;   --pidfile) PIDFILE=$2; shift 2 ;;
    --num-queues) QUEUES=$2; shift 2 ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
[ ${#DISKS[@]} -gt 0 ] || { echo "no --disk given (see --help)" >&2; exit 2; }
[ -s "$OUT/initramfs.cpio.gz" ] || { echo "no $OUT/initramfs.cpio.gz: run build_initramfs.sh" >&2; exit 2; }

case $ACCEL in
  tcg) ACCEL_ARGS=(-accel tcg,thread=multi -cpu max) ;;
  # -cpu host makes QEMU 7.2 set IA32_ARCH_CAPABILITIES, which nested kvm_pvm rejects
  kvm) ACCEL_ARGS=(-accel kvm -cpu host,-arch-capabilities) ;;
  *) echo "bad --accel $ACCEL" >&2; exit 2 ;;
esac
case $LEGACY in
  on) VIRTIO_OPTS="disable-modern=on,disable-legacy=off" ;;
  off) VIRTIO_OPTS="disable-legacy=on,disable-modern=off" ;;
  *) echo "bad --legacy $LEGACY" >&2; exit 2 ;;
esac
[ -n "$QUEUE" ] && VIRTIO_OPTS="$VIRTIO_OPTS,queue-size=$QUEUE"

QSD_PIDS=(); QSD_SOCKS=()
cleanup() {
  for p in "${QSD_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
  for s in "${QSD_SOCKS[@]}"; do rm -f "$s"; done
}
trap cleanup EXIT

MEM_ARGS=(-m "$MEM"); DISK_ARGS=(); n=0
for disk in "${DISKS[@]}"; do
  kind=${disk%%:*}; arg=${disk#*:}
  case $kind in
    builtin)
      [ -e "$arg" ] || { echo "no image $arg" >&2; exit 2; }
      DISK_ARGS+=(-drive "file=$arg,if=none,id=d$n,format=raw,cache=none,aio=threads"
                  -device "virtio-blk-pci,drive=d$n,num-queues=$QUEUES,$VIRTIO_OPTS") ;;
    vhost|qsd|qsd-uring|qsd-cache|qsd-uring-cache)
      # vhost-user needs guest RAM in a shareable fd
      MEM_ARGS=(-m "$MEM" -object "memory-backend-memfd,id=mem,size=${MEM}M,share=on" -machine "memory-backend=mem")
      sock=$arg
      if [ "$kind" != vhost ]; then
        aio=threads; case $kind in qsd-uring*) aio=io_uring ;; esac
        direct=on; case $kind in *-cache) direct=off ;; esac
        command -v qemu-storage-daemon >/dev/null || { echo "qemu-storage-daemon missing (Debian: qemu-system-common)" >&2; exit 2; }
        sock=$WORK/qsd.$$.$n.sock; rm -f "$sock"; QSD_SOCKS+=("$sock")
        qemu-storage-daemon \
          --blockdev "driver=file,node-name=file$n,filename=$arg,cache.direct=$direct,aio=$aio" \
          --export "type=vhost-user-blk,id=exp$n,node-name=file$n,addr.type=unix,addr.path=$sock,writable=on,num-queues=$QUEUES" \
          >"$WORK/qsd.$$.$n.log" 2>&1 &
        QSD_PIDS+=($!)
        for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.05; done
        [ -S "$sock" ] || { echo "qemu-storage-daemon did not start:" >&2; cat "$WORK/qsd.$$.$n.log" >&2; exit 3; }
      fi
      DISK_ARGS+=(-chardev "socket,id=vu$n,path=$sock"
                  -device "vhost-user-blk-pci,chardev=vu$n,num-queues=$QUEUES,$VIRTIO_OPTS") ;;
    *) echo "bad --disk $disk" >&2; exit 2 ;;
  esac
  n=$((n + 1))
done

[ -n "$PIDFILE" ] && DISK_ARGS+=(-pidfile "$PIDFILE")
APPEND="console=ttyS0 panic=-1 quiet loglevel=3 rdinit=/init run=$RUN ${EXTRA[*]:-}"
CMD=(qemu-system-x86_64 "${ACCEL_ARGS[@]}" -smp "$SMP" "${MEM_ARGS[@]}" -nographic -no-reboot
     -nodefaults -serial stdio -monitor none
     -kernel "$OUT/vmlinuz" -initrd "$OUT/initramfs.cpio.gz" -append "$APPEND" "${DISK_ARGS[@]}")
echo "@@BOOT cmd: ${CMD[*]}"
t0=$(date +%s.%N)
timeout --foreground -k 5 "$TIMEOUT" "${CMD[@]}" </dev/null 2>&1 | {
  end=""; rc=99
  while IFS= read -r line; do
    line=${line%$'\r'}
    printf '%s\n' "$line"
    case "$line" in
      *@@END\ rc=*) end=$(date +%s.%N); rc=${line#*@@END rc=}; rc=${rc%% *} ;;
    esac
  done
  t1=$(date +%s.%N)
  awk -v t0="$t0" -v e="$end" -v t1="$t1" -v rc="$rc" -v leg="$LEGACY" 'BEGIN{
    printf "@@BOOT legacy=%s end_s=%s total_s=%.2f rc=%s\n", leg, (e==""?"none":sprintf("%.2f",e-t0)), t1-t0, rc }'
  exit "$rc"
}
ps=("${PIPESTATUS[@]}"); rc=${ps[1]}
[ "${ps[0]}" = 124 ] && { echo "@@BOOT timeout after ${TIMEOUT}s"; rc=124; }
exit "$rc"
