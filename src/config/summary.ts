/**
 * What `l4proxy check --config FILE` prints for a valid file, like `nginx -t`: one
 * line for the file, then each listener with its targets and its limits.
 */
import { formatParsed } from './address.js';
import type { Config } from './config.js';
import { formatDuration } from './duration.js';

/** summarizeConfig describes `config`, read from `file`, in lines ending with a newline. */
export function summarizeConfig(file: string, config: Config): string {
  const lines = [`${file}: ok, ${config.listeners.length} listener(s)`];
  for (const l of config.listeners) {
    const targets = l.targets
      .map((t) => (t.weight === 1 ? t.address : `${t.address} (weight ${t.weight})`))
      .join(', ');
    const limit = Number.isFinite(l.maxConnections) ? String(l.maxConnections) : 'none';
    lines.push(
      `  ${l.name}: ${formatListen(l.listen)} -> ${targets}`,
      `    idle ${formatDuration(l.idleTimeoutMs)}, half-close ${formatDuration(l.halfCloseTimeoutMs)}, ` +
        `connect ${formatDuration(l.connectTimeoutMs)}, shutdown ${formatDuration(l.shutdownTimeoutMs)}, ` +
        `max connections ${limit}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

function formatListen(listen: Config['listeners'][number]['listen']): string {
  return listen.path === undefined && listen.host === undefined
    ? `*:${listen.port}`
    : formatParsed(listen);
}
