/**
 * A `node --test` reporter that counts top-level tests the way Deno's
 * summary does (steps are not tests): passed, failed, skipped. A test file
 * that fails outside any test (it cannot even load) counts as one failure.
 * It writes one JSON line, `{ passed, failed, skipped, failures }`, to its
 * destination for `run.ts`.
 *
 * @module
 */

/** The part of a `node:test` reporter event this reporter reads. */
interface TestEvent {
  readonly type: string;
  readonly data?: {
    readonly nesting?: number;
    readonly name?: string;
    readonly file?: string;
    readonly skip?: unknown;
    readonly todo?: unknown;
  };
}

/** Counts of one Node test run. */
export interface NodeTestCounts {
  passed: number;
  failed: number;
  skipped: number;
  /** Names of the failed tests (a file that failed to load is named by its path). */
  failures: string[];
}

/** The reporter: consumes the run's events, yields the counts at the end. */
export default async function* countReporter(
  source: AsyncIterable<TestEvent>,
): AsyncGenerator<string> {
  const counts: NodeTestCounts = { passed: 0, failed: 0, skipped: 0, failures: [] };
  for await (const event of source) {
    const data = event.data;
    if (data?.nesting !== 0) continue;
    const skippedOrTodo = (data.skip !== undefined && data.skip !== false) ||
      (data.todo !== undefined && data.todo !== false);
    if (event.type === "test:pass") {
      if (skippedOrTodo) counts.skipped++;
      else counts.passed++;
    } else if (event.type === "test:fail") {
      counts.failed++;
      counts.failures.push(data.name ?? "?");
    }
  }
  yield JSON.stringify(counts) + "\n";
}
