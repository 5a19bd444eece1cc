/**
 * Unix socket files: when one left behind may be removed, and removing our own on
 * exit. A listening Unix socket is a file that outlives a process that dies (or
 * exits without closing its server), and the next bind to that path then fails
 * with EADDRINUSE. Only a socket file that nobody accepts on is stale: a regular
 * file, a directory or anything else at the path is the user's and is never
 * deleted, and a socket somebody answers on belongs to a running process.
 */

import { lstatSync, unlinkSync } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { connect } from 'node:net';
import { errorCode } from './errors.js';

/**
 * isStaleSocket tells whether `path` is a socket file that nobody accepts on
 * (connecting to it is refused), and so may be removed before binding again.
 * False for anything that is not a socket (a regular file also refuses a connect,
 * with ECONNREFUSED, which is why the type is checked first) and for a missing path.
 */
export async function isStaleSocket(path: string): Promise<boolean> {
  try {
    if (!(await lstat(path)).isSocket()) return false;
  } catch {
    return false;
  }
  return new Promise((resolve) => {
    const probe = connect({ path });
    probe.once('connect', function probeOnConnect() {
      probe.destroy();
      resolve(false);
    });
    // Connect error (design case "connect fails"): only a refusal means nobody is there.
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
