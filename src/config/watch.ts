/**
 * `--watch-config`: reload the config file when its content changes, as SIGHUP does.
 *
 * How and why. Watching the file itself (`fs.watch(file)`) is not enough: inotify
 * watches an inode, and the usual ways of updating a file replace that inode.
 *
 * - An editor, or `mv`, writes a temporary file and renames it over the old one. The
 *   watched inode is the old file, which nobody changes again.
 * - A Kubernetes ConfigMap (or Secret) volume is a symlink dance done by the kubelet's
 *   atomic writer. The mounted directory holds
 *
 *       config.yaml -> ..data/config.yaml
 *       ..data      -> ..2026_12_06_18_00_00.123456789
 *       ..2026_12_06_18_00_00.123456789/config.yaml      (the real file)
 *
 *   An update writes the new files into a new timestamped directory, creates a
 *   symlink `..data_tmp` to it, renames `..data_tmp` over `..data` (one atomic
 *   rename: a reader sees the old files or the new ones, never a mix), and removes the
 *   old timestamped directory. `config.yaml` itself never changes; what it resolves
 *   to does, and the old real file is deleted.
 *
 * So ConfigWatch watches directories, not the file: the directory the path names
 * (it sees the editor's rename and the `..data` swap) and the directory of the file the
 * path resolves to now (it sees a write or `touch` through the symlinks). The second is
 * re-resolved after every check, since a swap moves it. Events are only hints: a burst
 * of them (an editor's temp file and rename, the five steps of a swap, several writes)
 * is debounced to one check `WATCH_DEBOUNCE_MS` after the last event (or at most
 * `WATCH_MAX_DELAY_MS` after the first, so a directory that never stops changing still
 * gets checked), and the check reads the file and compares a SHA-256 of its bytes with
 * the last one seen. Only different bytes call `onChange`: a `touch`, a swap to the same
 * content or an event for another file changes nothing. A file that cannot be read at
 * check time (briefly missing, mid-swap) is logged as a warning and skipped; the next
 * event checks again, and the running configuration stays as it was meanwhile.
 *
 * The digest is taken when the watch starts, right after the configuration was loaded:
 * a change made in between is seen at the next event, not before.
 */
import { createHash } from 'node:crypto';
import { type FSWatcher, readFileSync, realpathSync, watch } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';
import { errorCode, ProxyError } from '../errors.js';
import type { Logger } from '../log.js';

/** WATCH_DEBOUNCE_MS: the file is checked this long after the last event of a burst. */
export const WATCH_DEBOUNCE_MS = 200;

/** WATCH_MAX_DELAY_MS: the file is checked at most this long after the first event of a burst. */
export const WATCH_MAX_DELAY_MS = 2000;

/** ConfigWatchOptions: what to watch, where to log, and what to do on a change. */
export interface ConfigWatchOptions {
  /** file: the config file, as given to `--config` (a symlink is fine). */
  readonly file: string;
  readonly log: Logger;
  /**
   * onChange is called once per burst of events after which the file's bytes differ
   * from the last bytes seen. It re-reads and applies the file itself, and logs the
   * outcome (`config reloaded` or `config reload refused`).
   */
  readonly onChange: () => void;
  /** debounceMs: default WATCH_DEBOUNCE_MS. */
  readonly debounceMs?: number;
}

/**
 * ConfigWatch watches a config file (see the module comment) until `close()`. Its
 * directory watches do not keep the process alive. The constructor throws a
 * ProxyError (`PROXY_ERR_INVALID_CONFIG`) if the file's directory cannot be watched.
 */
export class ConfigWatch {
  readonly #file: string;
  readonly #log: Logger;
  readonly #onChange: () => void;
  readonly #debounceMs: number;
  /** #watchers: one per watched directory, with the names in it that matter. */
  readonly #watchers = new Map<string, { watcher: FSWatcher; names: Set<string> }>();
  #digest: string | null;
  #timer: NodeJS.Timeout | undefined;
  #burstStartMs = 0;
  #closed = false;

  constructor(options: ConfigWatchOptions) {
    this.#file = resolve(options.file);
    this.#log = options.log;
    this.#onChange = options.onChange;
    this.#debounceMs = options.debounceMs ?? WATCH_DEBOUNCE_MS;
    this.#digest = digestOf(this.#file);
    const dir = dirname(this.#file);
    try {
      this.#watchDir(dir, true);
    } catch (err) {
      throw new ProxyError(
        'PROXY_ERR_INVALID_CONFIG',
        `--watch-config: cannot watch ${dir}: ${errorCode(err)}`,
        { cause: err },
      );
    }
    this.#rewatch();
    this.#log.info('watching config file', { path: options.file });
  }

  /** close stops watching; a pending check is dropped. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    for (const { watcher } of this.#watchers.values()) watcher.close();
    this.#watchers.clear();
  }

  /** #rewatch watches the directory of the file the path resolves to now, and drops a stale one. */
  #rewatch(): void {
    const named = dirname(this.#file);
    let real: string | null = null;
    try {
      real = realpathSync(this.#file);
    } catch {
      // Missing for now: the directory the path names still sees it come back.
    }
    for (const [dir, entry] of this.#watchers) {
      if (dir === named || (real !== null && dir === dirname(real))) continue;
      entry.watcher.close();
      this.#watchers.delete(dir);
    }
    if (real === null) return;
    try {
      this.#watchDir(dirname(real), false).names.add(basename(real));
    } catch (err) {
      // Gone between realpath and watch (mid-swap): the next event resolves it again.
      this.#log.debug('config watch skipped a directory', {
        path: dirname(real),
        code: errorCode(err),
      });
    }
  }

  #watchDir(dir: string, named: boolean): { names: Set<string> } {
    const existing = this.#watchers.get(dir);
    if (existing !== undefined) return existing;
    const names = new Set(named ? [basename(this.#file)] : []);
    const watcher = watch(dir, { persistent: false }, (_event, name) => {
      if (isRelevant(name, names, named)) this.#schedule();
    });
    watcher.on('error', (err) => {
      this.#log.warn('config watch error', { path: dir, code: errorCode(err) });
      watcher.close();
      if (this.#watchers.get(dir)?.watcher === watcher) this.#watchers.delete(dir);
    });
    const entry = { watcher, names };
    this.#watchers.set(dir, entry);
    return entry;
  }

  /** #schedule (re)arms the check: WATCH_DEBOUNCE_MS after this event, capped by the burst's start. */
  #schedule(): void {
    if (this.#closed) return;
    const now = Date.now();
    if (this.#timer === undefined) this.#burstStartMs = now;
    clearTimeout(this.#timer);
    const delayMs = Math.min(this.#debounceMs, this.#burstStartMs + WATCH_MAX_DELAY_MS - now);
    this.#timer = setTimeout(() => this.#check(), Math.max(0, delayMs));
    this.#timer.unref();
  }

  #check(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    let digest: string;
    try {
      digest = sha256(readFileSync(this.#file));
    } catch (err) {
      this.#log.warn('config file unreadable', { path: this.#file, code: errorCode(err) });
      this.#rewatch();
      return;
    }
    this.#rewatch();
    if (digest === this.#digest) {
      this.#log.debug('config file unchanged', { path: this.#file });
      return;
    }
    this.#digest = digest;
    this.#log.info('config file changed', { path: this.#file });
    this.#onChange();
  }
}

/**
 * isRelevant: an event for the file's own name, for a name the kubelet's atomic
 * writer uses (`..data`, `..data_tmp`, `..2026_...`: they start with `..`) in the
 * directory the path names, or without a name (some platforms give none).
 */
function isRelevant(name: string | Buffer | null, names: Set<string>, named: boolean): boolean {
  if (name === null) return true;
  const text = name.toString();
  return names.has(text) || (named && text.startsWith('..'));
}

function digestOf(file: string): string | null {
  try {
    return sha256(readFileSync(file));
  } catch {
    return null; // gone since it was loaded: whatever appears next is a change
  }
}

function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}
