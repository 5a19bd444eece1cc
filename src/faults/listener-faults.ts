/**
 * ListenerFaults: what a JavaScript test asked of one listener's next connections
 * (docs/testing.md): to take hold of the next one that relays (`nextConnection`), or
 * to refuse or hang the next n accepted clients (`refuseNext`, `hangNext`).
 *
 * A listener has one only while a test asked for something (Listener.faults); a
 * listener without pays one property check per accept and per relaying connection.
 * When a reload moves a listener to a new address, what is still pending goes to the
 * listener that replaces it (`takePending`), so it is kept by listener name; handles
 * on the old listener's open connections stay with it.
 */
import type { ConnectionInfo } from '../connection-info.js';
import { type ConnectionHandle, Handle, type HeldConnection } from './connection-handle.js';

/** AcceptFate: what happens to an accepted client. */
export type AcceptFate = 'dial' | 'refuse' | 'hang';

/** ListenerFaults keeps one listener's pending requests, oldest first. */
export class ListenerFaults {
  #refuse = 0;
  #hang = 0;
  #waiting: ((handle: ConnectionHandle) => void)[] = [];
  readonly #handles = new Map<string, Handle>();

  /** idle: nothing is pending and no handle waits for its close; the listener may drop this. */
  get idle(): boolean {
    return (
      this.#refuse === 0 &&
      this.#hang === 0 &&
      this.#waiting.length === 0 &&
      this.#handles.size === 0
    );
  }

  /** refuseNext: the next `n` accepted clients are refused (added to any still pending). */
  refuseNext(n: number): void {
    this.#refuse += n;
  }

  /** hangNext: the next `n` accepted clients hang (after the refused ones, if any). */
  hangNext(n: number): void {
    this.#hang += n;
  }

  /** nextConnection resolves with a handle on the next connection that starts relaying. */
  nextConnection(): Promise<ConnectionHandle> {
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /**
   * takePending moves what is still pending (refusals, hangs, waiting `nextConnection`
   * calls, in order) to a new ListenerFaults and returns it, or null when nothing is
   * pending. Handles on open connections stay here, to settle when those close.
   */
  takePending(): ListenerFaults | null {
    if (this.#refuse === 0 && this.#hang === 0 && this.#waiting.length === 0) return null;
    const taken = new ListenerFaults();
    taken.#refuse = this.#refuse;
    taken.#hang = this.#hang;
    taken.#waiting = this.#waiting;
    this.#refuse = 0;
    this.#hang = 0;
    this.#waiting = [];
    return taken;
  }

  /** onAccept: the fate of a client just accepted (refusals are counted first). */
  onAccept(): AcceptFate {
    if (this.#refuse > 0) {
      this.#refuse -= 1;
      return 'refuse';
    }
    if (this.#hang > 0) {
      this.#hang -= 1;
      return 'hang';
    }
    return 'dial';
  }

  /**
   * onRelaying: a connection starts relaying. If a test waits for one, it gets a handle
   * on it; the returned StageControl is what the listener's toxics must be given.
   */
  onRelaying(connection: HeldConnection): Handle | null {
    const resolve = this.#waiting.shift();
    if (resolve === undefined) return null;
    const handle = new Handle(connection);
    this.#handles.set(handle.id, handle);
    resolve(handle);
    return handle;
  }

  /** onClosed: a connection closed; its handle (if any) settles `closed`. */
  onClosed(info: ConnectionInfo): void {
    const handle = this.#handles.get(info.id);
    if (handle === undefined) return;
    this.#handles.delete(info.id);
    handle.settle(info);
  }
}
