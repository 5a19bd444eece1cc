/**
 * Unix domain socket files left behind. A server that dies without closing leaves its
 * socket file, and the next bind to that path fails with EADDRINUSE. Such a file may
 * be removed, but only if it is a socket (lstat, not following a symbolic link) and
 * nothing accepts on it any more: a connect is refused. A regular file, a directory
 * or a link at the path is the user's, never ours to remove; and a connect to a
 * regular file is refused too, so the connect alone cannot tell.
 *
 * Our own socket files are removed again when we are done with them (socketFile,
 * unlinkSocketFile), but only while the path still names the very file we bound.
 */
import { lstatSync, unlinkSync } from 'node:fs';
import { lstat, unlink } from 'node:fs/promises';
import { connect } from 'node:net';
import { errorCode } from './errors.js';

/**
 * removeStaleSocket removes the Unix domain socket file at `path` if nothing accepts
 * on it, so that a bind that failed with EADDRINUSE can be tried again. Returns true
 * when the path is free now (removed, or already gone), false when a server answers
 * there (the address really is in use). Rejects with an error of code `ENOTSOCK`
 * when the path is not a socket (it is left alone), and with the `lstat` error when
 * the path cannot be examined.
 */
export async function removeStaleSocket(path: string): Promise<boolean> {
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (err) {
    if (errorCode(err) === 'ENOENT') return true; // removed meanwhile: the path is free
    throw err;
  }
  if (!isSocket) {
    throw Object.assign(new Error(`${path} is not a socket`), { code: 'ENOTSOCK', path });
  }
  if (!(await nobodyAccepts(path))) return false;
  try {
    await unlink(path);
  } catch (err) {
    if (errorCode(err) !== 'ENOENT') throw err;
  }
  return true;
}

// A connect that is refused means no process listens on the socket any more.
function nobodyAccepts(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once('connect', function probeOnConnect() {
      probe.destroy();
      resolve(false);
    });
    probe.once('error', function probeOnError(err: Error) {
      resolve(errorCode(err) === 'ECONNREFUSED');
    });
  });
}

/** SocketFile identifies one socket file by device and inode, to tell it from a later one at the same path. */
export interface SocketFile {
  readonly path: string;
  readonly dev: number;
  readonly ino: number;
}

/** socketFile identifies the socket file at `path` now (just after binding it), or null. */
export function socketFile(path: string): SocketFile | null {
  try {
    const stat = lstatSync(path);
    return stat.isSocket() ? { path, dev: stat.dev, ino: stat.ino } : null;
  } catch {
    return null;
  }
}

/**
 * unlinkSocketFile removes `file` if the path still names that very socket file
 * (same device and inode): a file that another process bound there since, or that
 * the user put there, stays. Synchronous, so it can run in a process 'exit' listener.
 * Returns whether it removed the file.
 */
export function unlinkSocketFile(file: SocketFile): boolean {
  const now = socketFile(file.path);
  if (now === null || now.dev !== file.dev || now.ino !== file.ino) return false;
  try {
    unlinkSync(file.path);
    return true;
  } catch {
    return false; // gone already: nothing to do
  }
}
