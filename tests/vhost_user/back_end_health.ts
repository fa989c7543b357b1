/**
 * What a back end process holds, read from /proc/<pid>: its open fds (by
 * kind), its mappings of guest memory files, and its threads. Compared
 * before and after a run, these show a leak that no reply does.
 *
 * Threads named `tokio-runtime-w` are left out of the comparison: they are
 * Deno's blocking pool (every `poll` of the transport runs on one), which
 * grows under load and shrinks by itself after 10 s idle. Every other thread
 * (the main thread, V8's platform workers, blockif's `worker-N` threads)
 * must be back to its count.
 *
 * @module
 */

/** What one look at a process found. */
export interface Holdings {
  /** Open fds. */
  readonly fds: number;
  /** Open fds by what they are (`anon_inode:[eventfd]`, `/memfd:…`, `socket`, a path). */
  readonly fdKinds: Readonly<Record<string, number>>;
  /** Mappings of memory files (`/memfd:` lines of /proc/<pid>/maps): guest memory. */
  readonly memfdMappings: number;
  /** Threads by name, without Deno's blocking pool. */
  readonly threads: Readonly<Record<string, number>>;
}

const BLOCKING_POOL = "tokio-runtime-w";

function kindOf(link: string): string {
  if (link.startsWith("socket:")) return "socket";
  if (link.startsWith("pipe:")) return "pipe";
  if (link.startsWith("/memfd:")) return "memfd";
  return link;
}

function count(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names.sort()) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

/** Looks at process `pid` now. */
export function holdings(pid: number): Holdings {
  const links: string[] = [];
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      links.push(kindOf(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`)));
    } catch {
      // Closed between the listing and the look.
    }
  }
  const maps = Deno.readTextFileSync(`/proc/${pid}/maps`);
  const names: string[] = [];
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    try {
      const name = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim();
      if (name !== BLOCKING_POOL) names.push(name);
    } catch {
      // The thread ended meanwhile.
    }
  }
  return {
    fds: links.length,
    fdKinds: count(links),
    memfdMappings: maps.split("\n").filter((line) => line.includes("/memfd:")).length,
    threads: count(names),
  };
}

/** What `after` holds that `before` did not (empty when nothing leaked). */
export function leaks(before: Holdings, after: Holdings): string[] {
  const found: string[] = [];
  const compare = (
    what: string,
    a: Readonly<Record<string, number>>,
    b: Readonly<Record<string, number>>,
  ) => {
    for (const key of new Set([...Object.keys(a), ...Object.keys(b)])) {
      const was = a[key] ?? 0, is = b[key] ?? 0;
      if (is > was) found.push(`${is - was} more ${what} ${key} (${was} -> ${is})`);
    }
  };
  compare("fds:", before.fdKinds, after.fdKinds);
  if (after.memfdMappings > before.memfdMappings) {
    found.push(`guest memory mappings: ${before.memfdMappings} -> ${after.memfdMappings}`);
  }
  compare("threads named", before.threads, after.threads);
  return found;
}

/**
 * Looks at `pid` until it holds no more than `baseline`, for at most `ms`
 * (a session's resources are released in the background once it ended);
 * returns the leaks of the last look (empty: back to the baseline).
 */
export async function settledLeaks(pid: number, baseline: Holdings, ms: number): Promise<string[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const found = leaks(baseline, holdings(pid));
    if (found.length === 0 || Date.now() >= deadline) return found;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
