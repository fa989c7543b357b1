/**
 * ACRN's device types, the names its device model takes after the slot in
 * `-s <slot>[:<func>],<type>[,<config>]` (the `class_name` of each of its
 * PCI device emulations, `devicemodel/hw/pci/`). This device model emulates
 * virtio-blk and has a host bridge at 00:00.0; it accepts the others, so a
 * line pasted from an ACRN launch script works, and says it does not
 * emulate them. A name ACRN does not know is refused, as ACRN refuses it.
 *
 * @module
 */

/** Every device type ACRN's device model knows. */
export const ACRN_DEVICE_TYPES: ReadonlySet<string> = new Set([
  "ahci",
  "ahci-cd",
  "ahci-hd",
  "amd_hostbridge",
  "dummy",
  "hostbridge",
  "igd-lpc",
  "ivshmem",
  "lpc",
  "npk",
  "passthru",
  "pci-gvt",
  "uart",
  "vhost-vsock",
  "virtio-audio",
  "virtio-blk",
  "virtio-console",
  "virtio-coreu",
  "virtio-gpio",
  "virtio-gpu",
  "virtio-hdcp",
  "virtio-heci",
  "virtio-hyper_dmabuf",
  "virtio-i2c",
  "virtio-input",
  "virtio-ipu",
  "virtio-net",
  "virtio-rnd",
  "virtio-rpmb",
  "wdt-i6300esb",
  "xhci",
]);

/** The host bridges: this device model's own is at 00:00.0, where ACRN's launch scripts put one. */
export const HOST_BRIDGE_TYPES: ReadonlySet<string> = new Set(["hostbridge", "amd_hostbridge"]);

/** Types ACRN itself warns are obsolete and ignores, taking no slot (`pci_parse_slot`). */
export const OBSOLETE_TYPES: ReadonlySet<string> = new Set([
  "pci-gvt",
  "virtio-hdcp",
  "npk",
  "virtio-coreu",
]);
