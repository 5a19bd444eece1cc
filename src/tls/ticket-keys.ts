/**
 * The session ticket keys of the process. TLS 1.3 clients resume a session with a
 * ticket the proxy issued, encrypted with these keys; Node makes new random keys for
 * every SecureContext, so without this a reload (new contexts) would end every session
 * issued before it, and under `--workers N` a ticket from one worker would be refused
 * by every other (a full handshake each time the kernel or the primary hands the
 * client to another worker). One set per process instead, used by every terminating
 * listener and kept across reloads; the primary passes its own to the workers it forks
 * in TICKET_KEYS_ENV, as it passes systemd's sockets (socket-activation.ts), so every
 * worker, replacements included, accepts every worker's tickets. The keys are not
 * rotated, as Node's tls.Server does not rotate its own.
 */
import { randomBytes } from 'node:crypto';

/** TICKET_KEYS_ENV names the variable the primary passes its keys to its workers in (hex); internal. */
export const TICKET_KEYS_ENV = 'L4PROXY_TLS_TICKET_KEYS';

const KEY_BYTES = 48; // what SecureContext's ticketKeys takes: name, HMAC key, AES key
let keys: Buffer | undefined;

/**
 * ticketKeys is the process's 48 bytes of ticket keys: the ones the primary passed in
 * TICKET_KEYS_ENV, or random ones made on the first call; the same on every call.
 */
export function ticketKeys(): Buffer {
  if (keys === undefined) {
    const inherited = process.env[TICKET_KEYS_ENV];
    keys =
      inherited !== undefined && /^[0-9a-f]+$/.test(inherited) && inherited.length === KEY_BYTES * 2
        ? Buffer.from(inherited, 'hex')
        : randomBytes(KEY_BYTES);
  }
  return keys;
}

/** shareTicketKeys puts this process's ticket keys in its environment, for the workers it forks. */
export function shareTicketKeys(): void {
  process.env[TICKET_KEYS_ENV] = ticketKeys().toString('hex');
}
