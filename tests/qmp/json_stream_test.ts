/**
 * The QMP stream splitter: texts back to back or in pieces cut anywhere
 * (inside strings and escapes too), size and depth bounds that cost one
 * error and never memory, and stray tokens reported up to their end.
 */

import assert from "node:assert/strict";
import { type JsonPiece, JsonStreamSplitter } from "../../src/qmp/json_stream.ts";

const encode = (text: string) => new TextEncoder().encode(text);

/** Feeds `text` in pieces of `size` bytes; returns what came out. */
function split(text: string, size: number, splitter = new JsonStreamSplitter()): JsonPiece[] {
  const bytes = encode(text);
  const pieces: JsonPiece[] = [];
  for (let at = 0; at < bytes.length; at += size) {
    pieces.push(...splitter.push(bytes.subarray(at, at + size)));
  }
  return pieces;
}

Deno.test("json stream: texts come out whole, however the bytes are cut", () => {
  const texts = [
    `{"execute": "a", "arguments": {"s": "}{][\\"\\\\"}}`,
    `[1, {"x": [2, 3]}]`,
    `{"unicode": "é€𝄞", "esc": "\\u0041\\n"}`,
    `{}`,
  ];
  const stream = texts.join("") + "\r\n" + texts.join("\n");
  for (const size of [1, 2, 3, 7, 64, 4096]) {
    const pieces = split(stream, size);
    assert.deepEqual(
      pieces,
      [...texts, ...texts].map((text) => ({ kind: "text", text })),
      `cut every ${size} bytes`,
    );
  }
});

Deno.test("json stream: a text over the size limit is one error, is not kept, and the next text comes through", () => {
  const splitter = new JsonStreamSplitter({ maxBytes: 100, maxDepth: 8 });
  const big = `{"x": "${"a".repeat(1000)}"}`;
  const pieces = split(big + `{"ok": 1}`, 10, splitter);
  assert.deepEqual(pieces, [
    { kind: "error", reason: "JSON text longer than 100 bytes" },
    { kind: "text", text: `{"ok": 1}` },
  ]);
  // While it skips, it holds nothing.
  const skipping = new JsonStreamSplitter({ maxBytes: 100, maxDepth: 8 });
  skipping.push(encode(`{"x": "${"a".repeat(500)}`));
  assert.equal(skipping.buffered, 0);
});

Deno.test("json stream: nesting over the depth limit is one error; the text is skipped to its end", () => {
  const splitter = new JsonStreamSplitter({ maxBytes: 1 << 16, maxDepth: 4 });
  const pieces = split(`{"a": [[[[[[1]]]]]]} {"b": [[1]]}`, 3, splitter);
  assert.deepEqual(pieces, [
    { kind: "error", reason: "JSON nested deeper than 4 levels" },
    { kind: "text", text: `{"b": [[1]]}` },
  ]);
});

Deno.test("json stream: stray tokens at the top level are reported up to their end", () => {
  const pieces = split(`hello 12 "a b" ]{"x":1}`, 4);
  assert.deepEqual(pieces, [
    { kind: "error", reason: `JSON parse error, invalid token "hello"` },
    { kind: "error", reason: "QMP input must be a JSON object" },
    { kind: "error", reason: "QMP input must be a JSON object" },
    { kind: "error", reason: `JSON parse error, invalid token "]"` },
    { kind: "text", text: `{"x":1}` },
  ]);
});
