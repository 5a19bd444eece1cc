/** VERSION is this package's version, read once from its package.json. */
import { readFileSync } from 'node:fs';

function readVersion(): string {
  const text = readFileSync(new URL('../package.json', import.meta.url), 'utf8');
  const parsed: unknown = JSON.parse(text);
  if (typeof parsed === 'object' && parsed !== null && 'version' in parsed)
    return String(parsed.version);
  return '0.0.0';
}

export const VERSION: string = readVersion();

/** NAME is the command's and the package's name, as users type it. */
export const NAME = 'l4proxy';
