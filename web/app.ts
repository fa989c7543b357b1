/// <reference lib="dom" />
/**
 * The web page's script (`index.html`; bundled to `dist/app.js` by
 * `scripts/build_browser.ts`). It loads the library's browser build by URL
 * (`dist/virtio-blk.js`, whose worker entry points sit next to it), lets a
 * person choose a disk (an OPFS file: one from an earlier visit, a new blank
 * one, or a local image copied in; or an image URL, read lazily), and runs
 * the built-in guest's jobs on it: lsblk, and the load job with a progress
 * bar and a live IOPS/latency chart. Where the page cannot work (not
 * cross-origin isolated, no OPFS) it says so instead.
 *
 * Each job builds a machine with the chosen disk and closes it afterwards,
 * so the disk is free between jobs (an OPFS file is locked while open).
 * The status line's `data-state` (idle, running, done, failed, unsupported)
 * and `data-result` (the job's figures as JSON) are for scripts and tests.
 *
 * @module
 */

type Library = typeof import("../browser.ts");
type LoadProgress = import("../browser.ts").LoadProgress;
type BlockBackendSpec = import("../browser.ts").BackendSpec;
type UosJob = import("../browser.ts").UosJob;

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const output = $<HTMLPreElement>("output");
const status = $<HTMLParagraphElement>("status");

function setStatus(state: string, text: string, result?: unknown): void {
  status.dataset.state = state;
  status.textContent = text;
  if (result === undefined) delete status.dataset.result;
  else status.dataset.result = JSON.stringify(result);
}

/** What this browser lacks for the page, in plain words (empty: nothing). */
function missingParts(lib: Library | undefined): string[] {
  const missing: string[] = [];
  if (!globalThis.crossOriginIsolated) {
    missing.push(
      "This page is not cross-origin isolated, so the browser withholds SharedArrayBuffer, " +
        "which holds the guest's memory and the device's shared state. Serve it with the headers " +
        "Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp " +
        "(`npm run serve` does).",
    );
  }
  const opfs = lib?.opfsUnavailable();
  if (opfs !== undefined) {
    missing.push(`OPFS disks are unavailable: ${opfs}. Image URLs may still work.`);
  }
  return missing;
}

async function main(): Promise<void> {
  let lib: Library | undefined;
  let loadError: unknown;
  try {
    lib = await import(new URL("./virtio-blk.js", import.meta.url).href) as Library;
  } catch (error) {
    loadError = error;
  }
  const missing = missingParts(lib);
  if (lib === undefined) missing.push(`The library did not load: ${loadError}`);
  if (missing.length > 0) {
    const box = $<HTMLDivElement>("missing");
    box.hidden = false;
    for (const line of missing) {
      const p = document.createElement("p");
      p.textContent = line;
      box.append(p);
    }
  }
  if (lib === undefined || !globalThis.crossOriginIsolated) {
    setStatus("unsupported", "This page cannot run the device here (see above).");
    return;
  }
  new Page(lib, lib.opfsUnavailable() === undefined).start();
}

/** The page's controls and what they do. */
class Page {
  readonly #lib: Library;
  readonly #opfs: boolean;
  #busy = false;
  #stop: InstanceType<Library["StopFlag"]> | undefined;

  constructor(lib: Library, opfs: boolean) {
    this.#lib = lib;
    this.#opfs = opfs;
  }

  start(): void {
    $<HTMLFieldSetElement>("disk-choice").disabled = false;
    $<HTMLFieldSetElement>("jobs").disabled = false;
    if (!this.#opfs) {
      for (const id of ["opfs-files", "refresh", "create", "pick", "new-name", "new-size"]) {
        ($<HTMLInputElement>(id)).disabled = true;
      }
      $<HTMLInputElement>("overlay").querySelector<HTMLOptionElement>('[value="opfs"]')!.disabled =
        true;
      document.querySelector<HTMLInputElement>('input[value="url"]')!.checked = true;
    }
    $("refresh").addEventListener("click", () => this.#guard(() => this.#listDisks()));
    $("create").addEventListener("click", () => this.#guard(() => this.#createDisk()));
    $<HTMLInputElement>("pick").addEventListener("change", () => this.#guard(() => this.#copyIn()));
    $("lsblk").addEventListener("click", () => this.#guard(() => this.#lsblk()));
    $("load").addEventListener("click", () => this.#guard(() => this.#load()));
    $("stop").addEventListener("click", () => this.#stop?.request());
    const given = new URL(location.href).searchParams.get("image");
    if (given !== null) {
      $<HTMLInputElement>("image-url").value = given;
      document.querySelector<HTMLInputElement>('input[value="url"]')!.checked = true;
    }
    if (this.#opfs) this.#guard(() => this.#listDisks());
    else setStatus("idle", "Ready (image URLs only).");
  }

  /** Runs one action at a time; its failure goes to the status line. */
  async #guard(action: () => Promise<void>): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      await action();
    } catch (error) {
      setStatus("failed", error instanceof Error ? error.message : String(error));
    } finally {
      this.#busy = false;
    }
  }

  async #listDisks(selected?: string): Promise<void> {
    const select = $<HTMLSelectElement>("opfs-files");
    const previous = selected ?? select.value;
    select.replaceChildren();
    for (const entry of await this.#lib.listOpfsFiles()) {
      const option = new Option(`${entry.path} (${this.#lib.humanSize(entry.size)})`, entry.path);
      select.append(option);
    }
    if ([...select.options].some((o) => o.value === previous)) select.value = previous;
    setStatus("idle", select.options.length === 0 ? "No OPFS disk yet: create one." : "Ready.");
  }

  async #createDisk(): Promise<void> {
    const path = $<HTMLInputElement>("new-name").value.trim();
    const mib = Number($<HTMLInputElement>("new-size").value);
    await this.#lib.createOpfsDisk(path, mib * 1024 * 1024);
    await this.#listDisks(path);
    this.#chooseOpfs();
    setStatus("idle", `Created ${path}.`);
  }

  async #copyIn(): Promise<void> {
    const file = $<HTMLInputElement>("pick").files?.[0];
    if (file === undefined) return;
    const path = `disks/${file.name}`;
    const bar = $<HTMLProgressElement>("copy-progress");
    bar.hidden = false;
    try {
      await this.#lib.copyIntoOpfs(path, file, (copied, total) => {
        bar.value = total === 0 ? 1 : copied / total;
        setStatus("running", `Copying ${file.name} into the OPFS: ${this.#lib.humanSize(copied)}`);
      });
    } finally {
      bar.hidden = true;
    }
    await this.#listDisks(path);
    this.#chooseOpfs();
    setStatus("idle", `Copied ${file.name} to ${path}.`);
  }

  #chooseOpfs(): void {
    document.querySelector<HTMLInputElement>('input[value="opfs"]')!.checked = true;
  }

  /** Describes the chosen disk. */
  async #backend(): Promise<BlockBackendSpec> {
    const source = document.querySelector<HTMLInputElement>('input[name="source"]:checked')!.value;
    if (source === "opfs") {
      const path = $<HTMLSelectElement>("opfs-files").value;
      if (path === "") throw new Error("Choose an OPFS disk first (or create one).");
      return await this.#lib.describeOpfsFile(path);
    }
    const url = $<HTMLInputElement>("image-url").value.trim();
    if (url === "") throw new Error("Give an image URL first.");
    const overlay = $<HTMLSelectElement>("overlay").value;
    const name = new URL(url, location.href).pathname.split("/").at(-1) || "image";
    return await this.#lib.describeHttpImage(url, {
      overlay: overlay === "memory"
        ? "memory"
        : overlay === "opfs"
        ? { opfs: `overlays/${name}.cow` }
        : undefined,
    });
  }

  /** Builds a machine on the chosen disk, runs `job`, closes the machine. */
  async #run(job: UosJob, progress?: (p: LoadProgress) => void) {
    const backend = await this.#backend();
    const vm = await this.#lib.VirtualMachine.create({
      disks: [{ slot: 3, func: 0, device: { backend } }],
    });
    output.textContent = "";
    try {
      return await this.#lib.runUos(vm, job, {
        stdout: (text) => output.textContent += text,
        progress,
      });
    } finally {
      await vm.close();
    }
  }

  async #lsblk(): Promise<void> {
    setStatus("running", "Booting the guest: lsblk");
    let json = "";
    const result = await this.#run({ kind: "lsblk", json: true }, undefined);
    json = output.textContent ?? "";
    // Show the table too: run the plain form's columns from the JSON.
    const devices = JSON.parse(json).blockdevices as Record<string, unknown>[];
    output.textContent = formatTable(devices);
    setStatus(result.exitCode === 0 ? "done" : "failed", `lsblk exited ${result.exitCode}`, {
      exitCode: result.exitCode,
      blockdevices: devices,
    });
  }

  async #load(): Promise<void> {
    const value = (id: string) => $<HTMLInputElement>(id).value.trim();
    const options = this.#lib.parseLoadOptions({
      rw: value("rw"),
      bs: value("bs"),
      iodepth: value("iodepth"),
      size: value("size"),
      ...(value("runtime") === "" ? {} : { runtime: value("runtime"), time_based: true }),
      ...($<HTMLInputElement>("verify").checked ? { verify: "crc32c" } : {}),
    });
    this.#stop = new this.#lib.StopFlag();
    const chart = new Chart($<HTMLCanvasElement>("chart"));
    const bar = $<HTMLProgressElement>("load-progress");
    const phase = $<HTMLSpanElement>("phase");
    $<HTMLButtonElement>("stop").disabled = false;
    setStatus("running", "Booting the guest: load");
    try {
      const result = await this.#run({
        kind: "load",
        disk: "vda",
        options,
        json: false,
        progress: false,
        progressEvents: true,
        progressIntervalMs: 250,
        stop: this.#stop.buffer,
      }, (p) => {
        bar.value = p.fraction;
        phase.textContent = `${p.phase}: ${(p.fraction * 100).toFixed(0)}%`;
        chart.add(p);
      });
      const load = result.load;
      const verified = load?.verify === null || load?.verify === undefined
        ? ""
        : `, ${load.verify.checked} blocks verified, ${load.verify.mismatches} mismatches`;
      setStatus(
        result.exitCode === 0 ? "done" : "failed",
        `load exited ${result.exitCode}${verified}`,
        { exitCode: result.exitCode, load },
      );
    } finally {
      $<HTMLButtonElement>("stop").disabled = true;
      this.#stop = undefined;
    }
  }
}

/** lsblk's plain table from its JSON devices. */
function formatTable(devices: Record<string, unknown>[]): string {
  const columns = ["name", "size", "ro", "fstype", "label", "uuid"];
  const rows = [columns.map((c) => c.toUpperCase())];
  for (const device of devices) {
    rows.push(columns.map((c) => {
      const v = device[c];
      return v === null || v === undefined
        ? ""
        : typeof v === "boolean"
        ? (v ? "1" : "0")
        : String(v);
    }));
  }
  const widths = columns.map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((cell, i) => cell.padEnd(widths[i])).join("  ").trimEnd()).join(
    "\n",
  ) +
    "\n";
}

/** The live chart: IOPS and mean latency between successive progress snapshots. */
class Chart {
  readonly #canvas: HTMLCanvasElement;
  readonly #points: { iops: number; latencyUs: number }[] = [];
  /** Where each phase after the first starts (an index into the points), and its name. */
  readonly #phases: { at: number; phase: string }[] = [];
  #last: LoadProgress | undefined;

  constructor(canvas: HTMLCanvasElement) {
    this.#canvas = canvas;
    this.#draw();
  }

  add(p: LoadProgress): void {
    const last = this.#last;
    this.#last = p;
    if (last !== undefined && last.phase !== p.phase) {
      // Snapshots of different phases do not make a rate: mark where the next one starts.
      this.#phases.push({ at: this.#points.length, phase: p.phase });
    }
    if (last === undefined || last.phase !== p.phase || p.elapsedMs <= last.elapsedMs) return;
    const ios = p.read.ios + p.write.ios - last.read.ios - last.write.ios;
    const count = p.latency.count - last.latency.count;
    this.#points.push({
      iops: ios / ((p.elapsedMs - last.elapsedMs) / 1000),
      latencyUs: count === 0 ? 0 : (p.latency.totalNs - last.latency.totalNs) / count / 1000,
    });
    this.#draw();
  }

  #draw(): void {
    const context = this.#canvas.getContext("2d")!;
    const { width, height } = this.#canvas;
    context.clearRect(0, 0, width, height);
    context.font = "12px system-ui, sans-serif";
    const xOf = (i: number) =>
      this.#points.length <= 1 ? 0 : (i / (this.#points.length - 1)) * width;
    context.strokeStyle = "#999";
    context.fillStyle = "#666";
    for (const { at, phase } of this.#phases) {
      const x = xOf(Math.min(at, this.#points.length - 1));
      context.beginPath();
      context.moveTo(x, 20);
      context.lineTo(x, height);
      context.stroke();
      context.fillText(phase, x + 4, 32);
    }
    const series: [string, string, (q: { iops: number; latencyUs: number }) => number, string][] = [
      ["IOPS", "#1565c0", (q) => q.iops, ""],
      ["mean latency", "#c62828", (q) => q.latencyUs, " µs"],
    ];
    series.forEach(([label, color, pick, unit], index) => {
      const values = this.#points.map(pick);
      const top = Math.max(1, ...values);
      context.strokeStyle = color;
      context.fillStyle = color;
      context.beginPath();
      values.forEach((v, i) => {
        const x = xOf(i);
        const y = height - 4 - (v / top) * (height - 24);
        if (i === 0) context.moveTo(x, y);
        else context.lineTo(x, y);
      });
      context.stroke();
      const latest = values.at(-1);
      context.fillText(
        `${label}${latest === undefined ? "" : `: ${latest.toFixed(0)}${unit}`} (max ${
          top.toFixed(0)
        }${unit})`,
        8 + index * 260,
        14,
      );
    });
  }
}

await main();
