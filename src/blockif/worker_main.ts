/**
 * What a blockif worker thread runs (`worker.ts` is its entry point; a
 * bundle's worker entry calls {@linkcode serveBlockifThread} itself):
 * receives its set-up message, reports ready, then serves the devices
 * attached to its group until the group closes the pool.
 *
 * The server's loop is synchronous: while it runs, no message is read. The
 * group therefore posts a control message and then bumps the pool's
 * CONTROL word (and WAKE): the loop returns, this thread's event loop
 * delivers the message, the thread handles it, answers `done`, and
 * re-enters the loop once it has handled every message posted so far.
 * Messages are handled one after another, in order.
 *
 * A thread whose media complete on its event loop (a network disk) leaves
 * the loop also when it has nothing runnable (`"yield"`): it awaits
 * `server.idle()` (a kick, a control message, or a completion), so its
 * event loop delivers replies, fires timers and reads messages meanwhile.
 * A message read then is handled at once: the loop is between passes.
 *
 * @module
 */

import { openIoQueue } from "../backend/backend.ts";
import { noMedium } from "../backend/no_medium.ts";
import { parentChannel } from "../runtime/thread.ts";
import { wakeSignals } from "../sync/wake_signal.ts";
import { RequestPool } from "./request_pool.ts";
import { BlockifServer, type ServedDevice } from "./server.ts";
import {
  type ControlMessage,
  type DeviceHandles,
  loadDeviceModules,
  openServedDevice,
  withMemory,
  type WorkerInit,
  type WorkerMessage,
} from "./worker_init.ts";

/**
 * Serves this thread's group: answers the set-up message, then control
 * messages, running the server's loop in between, until the group closes
 * the pool. Call once, on a blockif worker thread.
 */
export async function serveBlockifThread(): Promise<void> {
  const parent = await parentChannel();
  const post = (reply: WorkerMessage) => parent.postMessage(reply);

  let index = -1;
  let server: BlockifServer | undefined;
  /** The last control message handled. */
  let handled = 0;
  let running = false;
  let closed = false;
  /** The handles each attached device came with (for new memory). */
  const handles = new Map<number, DeviceHandles>();
  /** Messages are handled in order, one at a time. */
  let pending: Promise<void> = Promise.resolve();

  parent.onMessage((message) => {
    pending = pending.then(() => receive(message as WorkerInit | ControlMessage));
  });

  async function receive(message: WorkerInit | ControlMessage): Promise<void> {
    if (closed) return;
    if (message.type === "init") {
      index = message.index;
      handled = message.control;
      const pool = new RequestPool(message.pool.dimensions, message.pool.buffer);
      if (message.settings.wake) await wakeSignals.load(message.settings.wake);
      server = new BlockifServer(pool, {
        ...message.settings,
        thread: index,
        log: (text) => post({ type: "log", index, message: text }),
      });
      server.handledControl(handled);
      post({ type: "ready", index });
    } else {
      let error: string | undefined;
      try {
        // The modules that open the message's handles, if this thread has not loaded them yet.
        if (message.type === "attach") await loadDeviceModules(message.handles);
        if (message.type === "memory") await loadDeviceModules({ memory: message.memory });
        if (message.type === "medium") await loadDeviceModules({ backend: message.backend });
        control(message);
      } catch (cause) {
        error = `blockif worker ${index}: ${
          cause instanceof Error ? cause.message : String(cause)
        }`;
      }
      handled = message.control;
      server!.handledControl(handled);
      post({ type: "done", index, control: handled, error });
    }
    void run();
  }

  function control(message: ControlMessage): void {
    const current = server!;
    switch (message.type) {
      case "attach": {
        const device = openServedDevice(message.handles, current.threadIo);
        const previous = current.device(message.device);
        try {
          current.attach(message.device, device);
        } catch (error) {
          void close(device);
          throw error;
        }
        void close(previous);
        handles.set(message.device, message.handles);
        return;
      }
      case "memory": {
        const device = current.device(message.device);
        const known = handles.get(message.device);
        if (device === undefined || known === undefined) return;
        current.attach(message.device, withMemory(device, message.memory, known.queues));
        return;
      }
      case "medium": {
        const device = current.device(message.device);
        const known = handles.get(message.device);
        if (device === undefined || known === undefined) return;
        // What was started on the old medium finishes on it; nothing reaches it after.
        current.finishIo();
        close(device);
        handles.set(message.device, {
          ...known,
          backend: message.backend,
          settings: message.settings,
        });
        try {
          current.attach(message.device, {
            ...device,
            settings: message.settings,
            io: openIoQueue(message.backend, current.threadIo),
          });
        } catch (error) {
          // Not the old medium (closed) and not the new one: an empty drive until the next change.
          const settings = {
            ...message.settings,
            limits: { ...message.settings.limits, capacity: 0 },
          };
          current.attach(message.device, {
            ...device,
            settings,
            io: openIoQueue(noMedium(), current.threadIo),
          });
          throw error;
        }
        return;
      }
      case "detach":
        handles.delete(message.device);
        void close(current.detach(message.device));
        return;
    }
  }

  /** Serves until the pool closes or a control message waits. */
  async function run(): Promise<void> {
    if (running || closed || server === undefined || server.control !== handled) return;
    running = true;
    let reason: "closing" | "control" | "yield";
    try {
      // Media that complete on this thread's event loop: back to it while idle.
      while ((reason = server.loop()) === "yield") await server.idle();
    } finally {
      running = false;
    }
    if (reason === "closing") {
      closed = true;
      await Promise.all([...handles.keys()].map((id) => close(server!.detach(id))));
      post({ type: "closed", index });
    }
  }

  /** Releases a device's medium (resolving once a network disk said goodbye). */
  async function close(device: ServedDevice | undefined): Promise<void> {
    try {
      await device?.io?.close();
    } catch (error) {
      post({ type: "log", index, message: `blockif worker ${index}: ${error}` });
    }
  }
}
