/**
 * The records behind every request: an {@linkcode Operation} is what the
 * caller submitted (read these bytes into this memory), and it becomes
 * one or more {@linkcode NbdCommand}s, the NBD requests on the wire (a
 * read larger than the server's maximum payload is split; a durable write
 * without FUA is followed by a FLUSH). The operation completes once every
 * command has, with the first failure as its result. Both kinds of record
 * are pooled and reused, so steady I/O allocates nothing for them.
 *
 * @module
 */

import { Coverage } from "./coverage.ts";
import { commandName } from "./protocol.ts";
import { ScatterList } from "./scatter.ts";

/** What an operation does. */
export const NbdOp = {
  /** Read `length` bytes at `offset` into the vector's memory. */
  READ: 0,
  /** Write the vector's `length` bytes at `offset`. */
  WRITE: 1,
  /** Make every write that completed before it durable (NBD_CMD_FLUSH). */
  FLUSH: 2,
  /** Discard `length` bytes at `offset` (NBD_CMD_TRIM; contents undefined afterwards). */
  TRIM: 3,
  /** Write `length` zero bytes at `offset` (NBD_CMD_WRITE_ZEROES). */
  WRITE_ZEROES: 4,
} as const;

/** One of {@linkcode NbdOp}'s values. */
export type NbdOpCode = typeof NbdOp[keyof typeof NbdOp];

/** Names of the operations, for messages. */
export const NBD_OP_NAMES: Readonly<Record<NbdOpCode, string>> = {
  [NbdOp.READ]: "read",
  [NbdOp.WRITE]: "write",
  [NbdOp.FLUSH]: "flush",
  [NbdOp.TRIM]: "trim",
  [NbdOp.WRITE_ZEROES]: "write-zeroes",
};

/** How an operation's completion is delivered: the client's callback with the token, or its own. */
export type OperationCallback = (result: number, operation: Operation) => void;

/** A submitted operation. */
export class Operation {
  /** What to do. */
  op: NbdOpCode = NbdOp.READ;
  /** Export byte offset. */
  offset = 0;
  /** Bytes. */
  length = 0;
  /** Durable before completion (FUA, or write then FLUSH). */
  fua = false;
  /** WRITE_ZEROES must allocate (NBD_CMD_FLAG_NO_HOLE). */
  noHole = false;
  /** The caller's token, handed back with the result. */
  token = 0;
  /** Its own completion (the promise API); undefined: the client's callback with the token. */
  callback: OperationCallback | undefined;
  /** The caller's memory (a copy of its vector's pieces). */
  readonly memory: ScatterList = new ScatterList();
  /** performance.now() by which it must complete. */
  deadline = 0;
  /** Commands still to finish. */
  remaining = 0;
  /** 0, or the first failure as -errno. */
  result = 0;
  /** Why it failed, one line (empty while it has not). */
  reason = "";
  /** Send a FLUSH once the writes are done (durable write on an export without FUA). */
  flushAfter = false;
  /** The result was delivered; the record waits for reuse. */
  finished = false;

  /** "read of 4096 bytes at 0" */
  describe(): string {
    const name = NBD_OP_NAMES[this.op];
    return this.op === NbdOp.FLUSH ? name : `${name} of ${this.length} bytes at ${this.offset}`;
  }
}

/** One NBD request of an operation. */
export class NbdCommand {
  /** NBD_CMD_*. */
  type = 0;
  /** NBD_CMD_FLAG_*. */
  flags = 0;
  /** Export offset. */
  offset = 0;
  /** Bytes (READ, WRITE) or effect length (TRIM, WRITE_ZEROES); 0 for FLUSH. */
  length = 0;
  /** Where this command's data starts within its operation's memory. */
  memoryAt = 0;
  /** The operation it is part of (undefined while pooled). */
  operation: Operation | undefined;
  /** 0, or the errno its reply (or the connection) failed it with. */
  errno = 0;
  /** Why it failed (the server's message, or what happened to the connection). */
  reason = "";
  /** Structured reply chunks received so far. */
  chunks = 0;
  /** Bytes of a structured read reply described so far. */
  readonly coverage: Coverage = new Coverage();
  /** Slot in the connection's table while in flight (the cookie's low half), else -1. */
  slot: number = -1;
  /** Next command in the client's send queue. */
  next: NbdCommand | undefined;

  /** "NBD_CMD_READ of 4096 bytes at 0" */
  describe(): string {
    const name = commandName(this.type);
    return this.length === 0 && this.offset === 0
      ? name
      : `${name} of ${this.length} bytes at ${this.offset}`;
  }
}

/** Reusable records of one kind. */
export class RecordPool<T> {
  readonly #free: T[] = [];

  /**
   * A pool of records made by `make`.
   *
   * @param make makes a record when none is free
   */
  constructor(readonly make: () => T) {}

  /** A free record, or a new one. */
  take(): T {
    return this.#free.pop() ?? this.make();
  }

  /** Returns `record` for reuse. */
  give(record: T): void {
    this.#free.push(record);
  }
}
