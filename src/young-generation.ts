/**
 * The young generation: where V8 allocates every new object, collected by the
 * scavenger. V8 grows it (from 1 MiB per semi-space; 5000 new connections took it to
 * 16 MiB on Node 20 and 24) when many of its objects survive a scavenge, which is
 * exactly what a burst of new long-lived connections looks like: each connection's
 * sockets and context survive. The grown space is kept afterwards, so a proxy that once accepted
 * a few thousand connections quickly holds up to 30 MiB more than it needs.
 *
 * The proxy's own hot path allocates little (reads land in reused buffers,
 * read-buffer.ts), so a young generation that never grows costs no measurable CPU
 * and saves that memory (docs/performance.md, "Memory per idle connection"). The
 * command therefore keeps it at its initial size by setting V8's growth factor to 1
 * before anything is accepted.
 *
 * Only the command does this: a library must not change the V8 flags of the program
 * that embeds it. A user who sets the young generation's size themselves (in
 * NODE_OPTIONS or node's own arguments) keeps their setting.
 */
import { setFlagsFromString } from 'node:v8';

/** YOUNG_GENERATION_FLAGS are node's flags that size the young generation (either spelling). */
const YOUNG_GENERATION_FLAGS =
  /--(?:(?:max|min)[-_]semi[-_]space[-_]size|semi[-_]space[-_]growth[-_]factor)\b/;

/** FIXED_YOUNG_GENERATION is the V8 flag that keeps the semi-spaces at their initial size. */
export const FIXED_YOUNG_GENERATION = '--semi-space-growth-factor=1';

/**
 * keepYoungGenerationSmall sets FIXED_YOUNG_GENERATION unless node was given a flag
 * that sizes the young generation. Returns whether it set it.
 */
export function keepYoungGenerationSmall(
  execArgv: readonly string[] = process.execArgv,
  nodeOptions: string = process.env['NODE_OPTIONS'] ?? '',
): boolean {
  if (YOUNG_GENERATION_FLAGS.test(nodeOptions)) return false;
  if (execArgv.some((arg) => YOUNG_GENERATION_FLAGS.test(arg))) return false;
  setFlagsFromString(FIXED_YOUNG_GENERATION);
  return true;
}
