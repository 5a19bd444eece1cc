/**
 * What `l4proxy check --config FILE` prints for a valid file, like `nginx -t`: one
 * line for the file, then each listener with its targets and its settings (every
 * listener setting of the option table, by its `brief` name, in table order).
 */
import { formatParsed } from './address.js';
import type { Config, ListenerConfig } from './config.js';
import { SETTING_NAMES, setting } from './options.js';

/** summarizeConfig describes `config`, read from `file`, in lines ending with a newline. */
export function summarizeConfig(file: string, config: Config): string {
  const lines = [`${file}: ok, ${config.listeners.length} listener(s)`];
  for (const l of config.listeners) {
    const targets = l.targets.map(describeTarget).join(', ');
    lines.push(`  ${l.name}: ${formatListen(l.listen)} -> ${targets}`, `    ${showSettings(l)}`);
  }
  return `${lines.join('\n')}\n`;
}

/** describeTarget writes a target: `a:1`, `a:1 (weight 2)`, `a:1 (backup)`, `a:1 (weight 2, backup)`. */
function describeTarget(t: ListenerConfig['targets'][number]): string {
  const notes = [
    ...(t.weight === 1 ? [] : [`weight ${t.weight}`]),
    ...(t.backup ? ['backup'] : []),
  ];
  return notes.length === 0 ? t.address : `${t.address} (${notes.join(', ')})`;
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
