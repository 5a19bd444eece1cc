/**
 * What `l4proxy check --config FILE` prints for a valid file, like `nginx -t`: one
 * line for the file, then each listener with its targets (or `routes by SNI` and a
 * line per route) and its settings (every listener setting of the option table, by
 * its `brief` name, in table order).
 */
import { formatParsed } from './address.js';
import type { Config, ListenerConfig } from './config.js';
import { OPTIONS, SETTING_NAMES, setting } from './options.js';
import { showTarget } from './routes-kind.js';

/** summarizeConfig describes `config`, read from `file`, in lines ending with a newline. */
export function summarizeConfig(file: string, config: Config): string {
  const lines = [`${file}: ok, ${config.listeners.length} listener(s)`];
  for (const l of config.listeners) {
    if (l.routes === undefined) {
      const targets = l.targets.map(showTarget).join(', ');
      lines.push(`  ${l.name}: ${formatListen(l.listen)} -> ${targets}`);
    } else {
      lines.push(`  ${l.name}: ${formatListen(l.listen)} -> routes by SNI`);
      for (const route of OPTIONS.routes.kind.show([...l.routes])) lines.push(`    ${route}`);
    }
    for (const toxic of OPTIONS.toxics.kind.show([...(l.toxics ?? [])])) lines.push(`    ${toxic}`);
    lines.push(`    ${showSettings(l)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** showSettings writes a listener's settings: `idle 5m, half-close 0, ..., max connections none`. */
function showSettings(l: ListenerConfig): string {
  return SETTING_NAMES.map((name) => {
    const spec = setting(name);
    return `${spec.brief} ${spec.kind.show(l[name])}`;
  }).join(', ');
}

function formatListen(listen: Config['listeners'][number]['listen']): string {
  return listen.path === undefined && listen.host === undefined
    ? `*:${listen.port}`
    : formatParsed(listen);
}
