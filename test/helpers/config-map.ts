/**
 * A ConfigMap volume on a local disk: the files and symlinks the kubelet's atomic
 * writer (kubernetes pkg/volume/util/atomic_writer.go) makes, updated in its order.
 *
 *     DIR/config.yaml -> ..data/config.yaml      (one per file, made once)
 *     DIR/..data      -> ..2026_12_06_18_00_00.123456789
 *     DIR/..2026_12_06_18_00_00.123456789/config.yaml
 *
 * An update: (1) make a new timestamped directory `..<UTC time>.<random>` and write
 * every file into it; (2) make the symlink `..data_tmp` to it; (3) rename `..data_tmp`
 * over `..data` (atomic); (4) make the user-visible symlinks not there yet; (5) remove
 * the old timestamped directory.
 */
import {
  mkdirSync,
  mkdtempSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { basename, join } from 'node:path';

/** ConfigMapVolume is a directory laid out like a mounted ConfigMap; `update` swaps in new files. */
export interface ConfigMapVolume {
  readonly dir: string;
  /** path is DIR/NAME, the user-visible symlink of file NAME. */
  path(name: string): string;
  /** update writes `files` (name → text) as the kubelet does; returns the new timestamped directory. */
  update(files: Readonly<Record<string, string>>): string;
}

/** createConfigMapVolume lays out `files` in `dir` (which must exist) as a first update would. */
export function createConfigMapVolume(
  dir: string,
  files: Readonly<Record<string, string>>,
): ConfigMapVolume {
  const volume: ConfigMapVolume = {
    dir,
    path: (name) => join(dir, name),
    update(next) {
      const dataLink = join(dir, '..data');
      let old: string | null = null;
      try {
        old = readlinkSync(dataLink);
      } catch {
        // the first update: no ..data yet
      }
      // (1) The kubelet: os.MkdirTemp(dir, time.Now().UTC().Format("..2006_01_02_15_04_05.")).
      const stamp = new Date().toISOString().replace(/[-:T]/g, '_').replace(/\..*$/, '');
      const tsDir = mkdtempSync(join(dir, `..${stamp}.`));
      for (const [name, text] of Object.entries(next)) writeFileSync(join(tsDir, name), text);
      // (2) and (3): a relative symlink, renamed over ..data.
      const tmpLink = join(dir, '..data_tmp');
      symlinkSync(basename(tsDir), tmpLink);
      renameSync(tmpLink, dataLink);
      // (4) The user-visible symlinks point through ..data, so they never change.
      for (const name of Object.keys(next)) {
        try {
          symlinkSync(join('..data', name), join(dir, name));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        }
      }
      // (5)
      if (old !== null) rmSync(join(dir, old), { recursive: true, force: true });
      return tsDir;
    },
  };
  mkdirSync(dir, { recursive: true });
  volume.update(files);
  return volume;
}
