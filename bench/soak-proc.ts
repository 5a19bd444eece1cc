/**
 * What the soak reads about the proxy's process from /proc (Linux): its open
 * descriptors and its resident memory, and, when descriptors leaked, what each
 * leaked socket is (its TCP state and ports, from /proc/net/tcp and tcp6).
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

/** descriptors maps each open descriptor of `pid` to what it points at (`socket:[123]`, a path, ...). */
export function descriptors(pid: number): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync(`/proc/${pid}/fd`)) {
    try {
      fds.set(Number(name), readlinkSync(`/proc/${pid}/fd/${name}`));
    } catch {
      // closed between readdir and readlink: not open any more
    }
  }
  return fds;
}

/** rssBytes is the resident set size of `pid` (VmRSS in /proc/PID/status). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  return kib * 1024;
}

const TCP_STATES: Readonly<Record<string, string>> = {
  '01': 'ESTABLISHED',
  '02': 'SYN_SENT',
  '03': 'SYN_RECV',
  '04': 'FIN_WAIT1',
  '05': 'FIN_WAIT2',
  '06': 'TIME_WAIT',
  '07': 'CLOSE',
  '08': 'CLOSE_WAIT',
  '09': 'LAST_ACK',
  '0A': 'LISTEN',
  '0B': 'CLOSING',
};

/** tcpSockets maps socket inodes to `state local->remote` (ports only), from /proc/net/tcp{,6}. */
function tcpSockets(): Map<string, string> {
  const byInode = new Map<string, string>();
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      const [local, remote, state, inode] = [f[1], f[2], f[3], f[9]];
      if (local === undefined || remote === undefined || state === undefined || !inode) continue;
      const port = (a: string): number => Number.parseInt(a.split(':')[1] ?? '0', 16);
      byInode.set(inode, `${TCP_STATES[state] ?? state} :${port(local)} -> :${port(remote)}`);
    }
  }
  return byInode;
}

/** describeNew lists the descriptors of `now` that `before` did not have, with TCP states. */
export function describeNew(before: Map<number, string>, now: Map<number, string>): string[] {
  const tcp = tcpSockets();
  const lines: string[] = [];
  for (const [fd, target] of now) {
    if (before.get(fd) === target) continue;
    const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
    const tcpState = inode === undefined ? undefined : tcp.get(inode);
    lines.push(`fd ${fd} -> ${target}${tcpState === undefined ? '' : ` (${tcpState})`}`);
  }
  return lines;
}
