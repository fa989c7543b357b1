/**
 * A vhost-user protocol fuzzer for a back end listening on a socket (as
 * cloud-hypervisor and rust-vmm fuzz theirs): connection after connection,
 * each with its own guest ({@linkcode GuestPlan}: a sealed memfd with a
 * ring), it sends QEMU's start sequence or not, then random and mutated
 * messages with real fds (`fuzz_messages.ts`, `fuzz_fds.ts`), and puts
 * chains on the ring and kicks now and then. Seeded: the same seed sends
 * the same messages (connection `c` draws from its own generator, seeded
 * from the run's seed and `c`).
 *
 * What the back end must do, checked at every message:
 * - answer every message the protocol answers (the GET_* requests, and any
 *   with NEED_REPLY: a u64 ack, REPLY_ACK §5) with exactly one reply
 *   carrying the request's number and flags 0x5, within
 *   {@linkcode FuzzOptions.replyBoundMs} (a watchdog: "never" fails);
 * - answer nothing else: a GET_FEATURES probe after every few unanswered
 *   messages must get the next reply;
 * - hang up on a header it cannot read (another version, a payload over
 *   4 KiB) — and only then;
 * - take every message without blocking the fuzzer (a back end that stops
 *   reading fails it).
 * The caller checks the rest: that the process lives, that it holds no more
 * than before (`back_end_health.ts`), and that it still serves a
 * well-behaved front end.
 *
 * @module
 */

import { Random } from "../../src/guest/jobs/block_order.ts";
import { check, closeFd, Errno, lastErrno, libc, Sys } from "../../src/vhost_user/libc.ts";
import { type Mapping, mapShared, unmap } from "../../src/vhost_user/mapping.ts";
import {
  decodeU64,
  encodeMessage,
  Header,
  HeaderFlag,
  type Message,
  receiveMessage,
  REPLY_FLAGS,
  Request,
} from "../../src/vhost_user/messages.ts";
import { MessageHeader } from "../../src/vhost_user/sys_structs.ts";
import { connectUnix, type UnixConnection } from "../../src/vhost_user/unix_socket.ts";
import { UsedRing } from "../../src/virtio/ring_layout.ts";
import { within } from "../helpers/within.ts";
import { makeFd, makeMemfd, releaseKeptFds } from "./fuzz_fds.ts";
import {
  ALWAYS_ANSWERED,
  expectsReply,
  type FuzzMessage,
  type GuestPlan,
  postChains,
  randomMessage,
  randomPlan,
  readableHeader,
  ringParts,
  startSequence,
  unreadableMessage,
} from "./fuzz_messages.ts";

/** How to fuzz. */
export interface FuzzOptions {
  /** The back end's socket. */
  readonly socket: string;
  /** Seed of the run. */
  readonly seed: number;
  /** Messages to send in all (probes and start sequences included). */
  readonly messages: number;
  /** Longest wait for one reply or hang-up (default 20 s). */
  readonly replyBoundMs?: number;
  /** Whether the back end process still runs (checked after every connection). */
  readonly alive?: () => boolean;
  /** Progress lines (default: none). */
  readonly progress?: (line: string) => void;
  /**
   * Called after every {@linkcode FuzzOptions.checkpointEvery} connections
   * (with the number of connections so far), between two connections: a
   * look at what the back end holds, which rejects to end the run.
   */
  readonly checkpoint?: (connections: number) => Promise<void>;
  /** Connections between two checkpoints (default 250). */
  readonly checkpointEvery?: number;
}

/** What a run did. */
export interface FuzzReport {
  seed: number;
  messages: number;
  replies: number;
  /** Acks that said "refused" (u64 other than 0). */
  refusedAcks: number;
  /** Connections the back end ended because it could not read a header. */
  hangUps: number;
  connections: number;
  fdsSent: number;
  /** Chains put on the ring (then kicked). */
  chains: number;
  /** Chains the back end completed (used.idx of each connection's ring at its end). */
  completed: number;
  elapsedMs: number;
}

/** The back end did something it must not: the message, and where. */
export class FuzzFinding extends Error {
  override name = "FuzzFinding";
}

/** Unanswered messages between two GET_FEATURES probes. */
const PROBE_EVERY = 12;
const MAX_FDS = 16;
const SEALED = Sys.F_SEAL_SHRINK | Sys.F_SEAL_GROW;

/** A connection's seed: the run's seed and the connection number, mixed. */
export function connectionSeed(seed: number, connection: number): number {
  return (Math.imul(seed ^ 0x5bd1e995, 0x9e3779b1) + Math.imul(connection + 1, 0x85ebca6b)) >>> 0;
}

function describe(message: FuzzMessage): string {
  const size = message.sizeField ?? message.payload.length;
  return `request ${message.request} flags 0x${message.flags.toString(16)} size ${size} ` +
    `fds [${message.fds.map((fd) => fd.kind).join(", ")}]`;
}

/** One connection of the fuzzer, with its guest. */
class FuzzConnection {
  readonly connection: UnixConnection;
  readonly #sender = new MessageHeader(MAX_FDS);
  readonly plan: GuestPlan;
  readonly memfd: number;
  readonly #mapping: Mapping;
  readonly memory: Uint8Array;
  kick = -1;
  /** Messages sent on this connection that the back end did not answer. */
  unanswered = 0;

  constructor(socket: string, readonly random: Random, readonly where: string) {
    this.plan = randomPlan(random);
    this.memfd = makeMemfd({ size: this.plan.memoryBytes, seals: SEALED });
    this.#mapping = mapShared(this.memfd, this.plan.memoryBytes);
    this.memory = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(
      Deno.UnsafePointer.create(this.#mapping.address)!,
      this.plan.memoryBytes,
    ));
    this.connection = connectUnix(socket);
  }

  /**
   * Sends `message` with fresh fds (closed once sent, but a kick eventfd,
   * which is kept to kick with). Returns how many fds went with it, or
   * -errno (EPIPE: the back end had already hung up); throws a finding when
   * the back end does not read.
   */
  send(message: FuzzMessage): number {
    const fds = message.fds.map((request) => {
      switch (request.kind) {
        case "plan-memory":
          return check("fcntl", libc().fcntl(this.memfd, Sys.F_DUPFD_CLOEXEC, 0));
        case "kick":
          return check("eventfd", libc().eventfd(0, Sys.EFD_CLOEXEC | Sys.EFD_NONBLOCK));
        default:
          return makeFd(request.kind, this.random);
      }
    });
    const bytes = encodeMessage(message.request, message.flags, message.payload);
    if (message.sizeField !== undefined) {
      new DataView(bytes.buffer).setUint32(Header.SIZE, message.sizeField >>> 0, true);
    }
    try {
      const result = sendWithFds(this.#sender, this.connection.fd, bytes, fds);
      if (result === -Errno.EAGAIN) {
        throw new FuzzFinding(`${this.where}: the back end stopped reading (${describe(message)})`);
      }
      return result < 0 ? result : fds.length;
    } finally {
      message.fds.forEach((request, i) => {
        if (request.kind !== "kick") return closeFd(fds[i]);
        if (this.kick >= 0) closeFd(this.kick);
        this.kick = fds[i];
      });
    }
  }

  /** The ring's used.idx as the back end left it: chains it completed (mod 2^16). */
  usedIndex(): number {
    const at = ringParts(this.plan).used + UsedRing.IDX;
    return this.memory[at] | (this.memory[at + 1] << 8);
  }

  close(): void {
    this.connection.close();
    closeFd(this.memfd);
    if (this.kick >= 0) closeFd(this.kick);
    unmap(this.#mapping);
    releaseKeptFds();
  }
}

/**
 * Sends `bytes` on socket `fd` without waiting, with `fds` (any number up
 * to the header's room) attached to the first byte: more than the back end
 * takes, if the test wants. Returns the bytes sent, or -errno (EAGAIN: the
 * peer does not read; EPIPE: it hung up).
 */
export function sendWithFds(
  header: MessageHeader,
  fd: number,
  bytes: Uint8Array<ArrayBuffer>,
  fds: readonly number[],
): number {
  let sent = 0;
  while (sent < bytes.length) {
    header.setData(bytes.subarray(sent));
    if (sent === 0) header.attachRights(fds);
    const result = Number(libc().sendmsg(fd, header.bytes, Sys.MSG_DONTWAIT | Sys.MSG_NOSIGNAL));
    if (result < 0) {
      const errno = lastErrno();
      if (errno === Errno.EINTR) continue;
      return -errno;
    }
    sent += result;
  }
  return sent;
}

/** Checks one reply against the message it answers. */
function checkReply(reply: Message | null, message: FuzzMessage, where: string): Message {
  if (reply === null) {
    throw new FuzzFinding(
      `${where}: the back end hung up instead of answering ${describe(message)}`,
    );
  }
  reply.fds.forEach(closeFd);
  const problems: string[] = [];
  if (reply.request !== message.request) problems.push(`request ${reply.request}`);
  if (reply.flags !== REPLY_FLAGS) problems.push(`flags 0x${reply.flags.toString(16)}`);
  if (reply.fds.length > 0) problems.push(`${reply.fds.length} fds`);
  const size = reply.payload.length;
  switch (message.request) {
    case Request.GET_CONFIG:
      if (size < 12 || size !== 12 + new DataView(reply.payload.buffer).getUint32(4, true)) {
        problems.push(`a config payload of ${size} bytes`);
      }
      break;
    default:
      if (size !== 8) problems.push(`a payload of ${size} bytes`);
  }
  if (problems.length > 0) {
    throw new FuzzFinding(`${where}: the reply to ${describe(message)} has ${problems.join(", ")}`);
  }
  return reply;
}

/**
 * Runs the fuzzer against the back end on `options.socket`. Resolves with
 * what it did; rejects at the first thing the back end must not do (a
 * {@linkcode FuzzFinding}, or `within`'s error for a reply or hang-up that
 * did not come: the run stops there, as what follows a hang or a crash
 * tells nothing).
 */
export async function fuzzBackEnd(options: FuzzOptions): Promise<FuzzReport> {
  const bound = options.replyBoundMs ?? 20_000;
  const started = Date.now();
  const report: FuzzReport = {
    seed: options.seed,
    messages: 0,
    replies: 0,
    refusedAcks: 0,
    hangUps: 0,
    connections: 0,
    fdsSent: 0,
    chains: 0,
    completed: 0,
    elapsedMs: 0,
  };
  let lastProgress = started;
  while (report.messages < options.messages) {
    const index = report.connections++;
    const random = new Random(connectionSeed(options.seed, index));
    const where = `seed ${options.seed}, connection ${index}`;
    const fc = new FuzzConnection(options.socket, random, where);
    try {
      await runConnection(fc, random, options, report, bound);
    } finally {
      report.completed += fc.usedIndex();
      fc.close();
    }
    if (options.alive && !options.alive()) {
      throw new FuzzFinding(`${where}: the back end process is gone`);
    }
    if (options.checkpoint && report.connections % (options.checkpointEvery ?? 250) === 0) {
      await options.checkpoint(report.connections);
    }
    if (options.progress && Date.now() - lastProgress > 10_000) {
      lastProgress = Date.now();
      options.progress(
        `${report.messages} messages, ${report.connections} connections, ` +
          `${Math.round((Date.now() - started) / 1000)} s`,
      );
    }
  }
  report.elapsedMs = Date.now() - started;
  return report;
}

async function runConnection(
  fc: FuzzConnection,
  random: Random,
  options: FuzzOptions,
  report: FuzzReport,
  bound: number,
): Promise<void> {
  let sequence = 0;
  const exchange = async (message: FuzzMessage): Promise<"answered" | "silent" | "hung-up"> => {
    const where = `${fc.where}, message ${sequence++}`;
    report.messages++;
    const sent = fc.send(message);
    if (sent < 0) {
      throw new FuzzFinding(
        `${where}: sending failed with errno ${-sent} (the back end hung up early)`,
      );
    }
    report.fdsSent += sent;
    if (!readableHeader(message)) {
      const next = await within(
        receiveMessage(fc.connection),
        bound,
        `${where}: hang-up after ${describe(message)}`,
      );
      if (next !== null) {
        next.fds.forEach(closeFd);
        throw new FuzzFinding(
          `${where}: answered request ${next.request} instead of hanging up after ${
            describe(message)
          }`,
        );
      }
      report.hangUps++;
      return "hung-up";
    }
    if (!expectsReply(message)) {
      fc.unanswered++;
      return "silent";
    }
    const reply = checkReply(
      await within(
        receiveMessage(fc.connection),
        bound,
        `${where}: the reply to ${describe(message)}`,
      ),
      message,
      where,
    );
    report.replies++;
    fc.unanswered = 0;
    if (!ALWAYS_ANSWERED.has(message.request) && decodeU64(reply.payload) !== 0n) {
      report.refusedAcks++;
    }
    return "answered";
  };
  const probe = (): FuzzMessage => ({
    request: Request.GET_FEATURES,
    flags: HeaderFlag.VERSION,
    payload: new Uint8Array(0),
    fds: [],
  });

  if (random.below(10) < 6) {
    for (const message of startSequence(fc.plan, random)) await exchange(message);
  }
  const length = 1 + random.below(random.below(4) === 0 ? 400 : 60);
  for (let i = 0; i < length && report.messages < options.messages; i++) {
    const roll = random.below(100);
    if (roll < 12 && fc.kick >= 0) {
      const chains = 1 + random.below(8);
      postChains(fc.memory, fc.plan, random, chains);
      report.chains += chains;
      libc().write(fc.kick, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]), 8n);
      continue;
    }
    if (roll < 14) {
      await exchange(unreadableMessage(random));
      return;
    }
    if (roll < 15) {
      // A header that promises more bytes than follow, then gone: the back end
      // waits for the rest until end of file.
      report.messages++;
      const message = randomMessage(fc.plan, random);
      fc.send({ ...message, sizeField: message.payload.length + 1 + random.below(64) });
      return;
    }
    await exchange(randomMessage(fc.plan, random));
    if (fc.unanswered >= PROBE_EVERY) await exchange(probe());
  }
  // Every message so far was answered or silent as it should be: nothing may be left.
  if (await exchange(probe()) !== "answered") return;
  switch (random.below(4)) {
    case 0:
      // Leave while a ring stop may still be running.
      report.messages++;
      fc.send({ ...probe(), request: Request.GET_VRING_BASE, payload: new Uint8Array(8) });
      break;
    case 1:
      // Leave in the middle of a header.
      fc.connection.send(new Uint8Array(1 + random.below(Header.LENGTH - 1)));
      break;
  }
}

/** Words of a JavaScript engine error, which no refusal written on purpose contains. */
const ENGINE_ERROR =
  /TypeError|RangeError|ReferenceError|SyntaxError|is not a function|Cannot read prop|Cannot convert|undefined|Offset is outside|Invalid typed array|out of bounds|Maximum call stack|Uncaught|panicked/;

/**
 * Lines of the back end's stderr that a fuzz run must not cause: anything
 * but its start-up line, its `vhost-user:` log lines and its stop line, and
 * log lines that carry an engine error (a handler that failed by accident
 * is refused like one that refused on purpose; only its text tells).
 */
export function unexpectedOutput(stderr: string): string[] {
  return stderr.split("\n").filter((line) =>
    line !== "" && (!/^(vhost-user: |virtio-blk-dm: )/.test(line) || ENGINE_ERROR.test(line))
  );
}

/** The log lines of `stderr` with numbers blanked, each once: what kinds of refusal a run saw. */
export function refusalKinds(stderr: string): string[] {
  const lines = stderr.split("\n").filter((line) => line.includes("vhost-user: "));
  return [...new Set(lines.map((line) => line.replace(/0x[0-9a-f]+|\d+/g, "N")))].sort();
}
