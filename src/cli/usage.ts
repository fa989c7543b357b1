/**
 * The `--help` text.
 *
 * @module
 */

import { LOAD_OPTION_HELP } from "../guest/jobs/load_options.ts";
import { EXIT_STATUSES } from "./exit_status.ts";
import { PROGRAM } from "./program.ts";

/**
 * How the user runs this program: the launcher in a checkout
 * (`./virtio-blk-dm`), or the npm package's bin, which has the same name.
 */
const COMMAND = PROGRAM;

function loadHelp(): string {
  return LOAD_OPTION_HELP.map(({ name, value, description }) => {
    const option = `      --${name}${value ? ` ${value}` : ""}`;
    return option.length < 23
      ? `${option.padEnd(23)}${description}`
      : `${option}\n${" ".repeat(23)}${description}`;
  }).join("\n");
}

function exitStatusHelp(): string {
  return EXIT_STATUSES.map(({ status, meaning }) => `  ${String(status).padEnd(5)}${meaning}`)
    .join("\n");
}

/** Usage, options, exit statuses and examples. */
export function usage(): string {
  return `Usage: ${COMMAND} [options] -s <slot>[:<func>],virtio-blk,<file>[,<option>…] …

A virtio-blk device model: plugs one legacy virtio-blk PCI function per -s into
a machine, launches the built-in guest (UOS) in a vCPU Worker, which finds the
disks as vda, vdb, … in slot order and runs a job on them.

Options:
  -s, --slot SPEC      add a virtio-blk function (repeatable); without any, a
                       temporary 64 MiB image is created, used and removed.
                       ACRN's other device types (-s 0:0,hostbridge,
                       -s 1:0,lpc, …) are accepted and not emulated
  -m, --memory SIZE    guest memory, 16M to 4G (default 256M)
  -c, --cpus N         vCPUs of the built-in machine, 1 to 16 (default 1); a disk
                       with mq=N gets one queue per vCPU, and a load on it is
                       spread over them
      --iothreads N    the disks that set no workers= or iothread= share N I/O
                       threads (1 to 64) instead of 8 each (QEMU's iothread)
      --job lsblk|load|watch
                       what the guest does: lsblk lists the disks (default);
                       load runs a fio-like load on one disk; watch lists
                       them and reports capacity changes until QMP quit
                       (the default with --qmp)
      --json           print the job's result as JSON: lsblk's (lsblk --json
                       --bytes) or fio's (fio --output-format=json) layout
      --output-format json|normal
                       fio's spelling: json is --json, normal the text form
      --vhost-user SOCKET
                       serve the one -s device over vhost-user-blk on SOCKET to
                       a VMM such as QEMU, instead of booting the built-in guest
                       (Deno only, needs --allow-ffi; see docs/vhost_user.md)
      --qmp PATH       a QMP control socket (QEMU's protocol) on PATH:
                       query-block, block_resize, eject, blockdev-change-medium,
                       quit, … QEMU's -qmp unix:PATH,server=on,wait=off is the
                       same; wait=on holds the guest until a client connects
  -h, --help           this text
      --version        print the program's name and version

Load options (with --job load; fio's names and meanings):
      --disk NAME      the disk to load (default vda)
${loadHelp()}

The file may be ACRN's nodisk: an empty drive (size 0, no medium) that takes
a medium later over QMP (blockdev-change-medium); its options apply to it.

Device options (after the file, comma-separated, as in ACRN):
  writethru            a write completes once it is on stable storage (default)
  writeback            writes may complete from the cache; FLUSH makes them stable
  ro                   read-only: opened read-only, VIRTIO_BLK_F_RO offered
  sectorsize=L[/P]     logical[/physical] block size, powers of two, L >= 512
  range=START/SIZE     expose only this window of the file, in logical sectors
  nocache              open with O_DIRECT (needs io=node-fs)
  discard[=MAX:SEG:ALIGN]
                       ACRN's: offer DISCARD (fstrim) with max_discard_sectors,
                       max_discard_seg (<= 256), discard_sector_alignment
                       (default: the disk, 1, 0); not on ro, nor on Node.
                       WRITE_ZEROES is offered on any writable disk
  no_bst_block         ACRN's: overlapping requests are not held back for
                       each other (they may run in any order)
  serial=TEXT          GET_ID serial, at most 20 characters (default: derived
                       from the options, as ACRN does)
  queue_size=N         virtqueue size, a power of two (default 64)
  workers=N            blockif worker threads (default 8)
  pool_size=N          blockif request elements (default 64)
  dispatch=worker|device
                       who drains the ring: a woken worker (default) or the
                       device model thread (ACRN's way)
  poll_us=N            longest adaptive polling window of an idle worker, in
                       microseconds (default 0: workers sleep at once)
  io=fsfile|node-fs    file I/O through Deno.FsFile or positional node:fs
  mq=N                 ACRN's: N request queues (1 to 16), written before the
                       path or after it; capped at --cpus in the built-in
                       machine; over --vhost-user, QEMU's num-queues=N

Exit status:
${exitStatusHelp()}

Examples:
  ${COMMAND}
  ${COMMAND} -s 9,virtio-blk,test.img
  ${COMMAND} -s 9,virtio-blk,test.img,writeback -s 10,virtio-blk,b.img,ro --json
  ${COMMAND} -s 9,virtio-blk,/dev/sdb1,sectorsize=4096 -s 10,virtio-blk,big.img,range=2048/204800
  ${COMMAND} -s 9,virtio-blk,test.img --job load --rw=randwrite --bs=4k --iodepth=32 --verify=crc32c
  ${COMMAND} --vhost-user /tmp/vblk.sock -s 9,virtio-blk,test.img,writeback
  ${COMMAND} --qmp /tmp/qmp.sock -s 9,virtio-blk,test.img -s 10,virtio-blk,nodisk,ro
`;
}
