/**
 * `node --import <this file's URL>?out=FILE ...` records every module the process
 * loads: one URL a line, appended to FILE. test/e2e/module-loads.test.ts reads it to
 * show which modules a command loads. Plain JavaScript, because it runs in front of
 * the built CLI, without tsx.
 *
 * ES modules are seen by a resolve hook: `module.registerHooks` (Node 22.15+, 23.5+;
 * it runs in this thread and sees `require` too), else `module.register` (Node 20: the
 * hook runs in a thread of its own, so it writes FILE itself). CommonJS modules that a
 * Node 20 hook does not see (those `require`d) are taken from the require cache at
 * exit.
 */
import { appendFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { pathToFileURL } from 'node:url';

const out = new URL(import.meta.url).searchParams.get('out');
if (out === null) throw new Error('record-loads: add ?out=FILE to the --import URL');

// The hook of module.register, as a module of its own (it runs in the loader thread).
const OFF_THREAD_HOOK = `
import { appendFileSync } from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(out, result.url + '\\n');
  return result;
}
`;

if (typeof nodeModule.registerHooks === 'function') {
  nodeModule.registerHooks({
    resolve(specifier, context, next) {
      const result = next(specifier, context);
      appendFileSync(out, `${result.url}\n`);
      return result;
    },
  });
} else {
  nodeModule.register(`data:text/javascript,${encodeURIComponent(OFF_THREAD_HOOK)}`, {
    data: { out },
  });
}

process.on('exit', () => {
  const cache = nodeModule.createRequire(import.meta.url).cache;
  const files = Object.keys(cache).map((file) => pathToFileURL(file).href);
  if (files.length > 0) appendFileSync(out, `${files.join('\n')}\n`);
});
