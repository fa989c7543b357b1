/**
 * Reads the eventfd whose number it is sent with `drainEventFd` and posts
 * the count back: in a worker, so that a read that waits blocks this thread
 * and not the test's.
 */

import { drainEventFd } from "../../src/vhost_user/eventfd.ts";

self.onmessage = (event: MessageEvent<number>) => {
  self.postMessage(drainEventFd(event.data));
};
