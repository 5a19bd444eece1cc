/**
 * ConnectionHandle: one relaying connection a test took hold of with
 * `proxy.nextConnection()` (docs/testing.md). Each of its directions gets a ToxicChain
 * of its own when the handle is made:
 *
 *   [listener's toxics] ─▶ [this connection's toxics, in the order added] ─▶ control
 *
 * The listener's toxics (the ToxicRegistry, as the HTTP API changes them) come in
 * through `stageControl`, which the registry is given in place of the connection: what
 * it sets goes into the chain's first slot, so both kinds compose. `control` is a
 * ControlStage: it counts, pauses, cuts and closes.
 */
import type { ConnectionInfo } from '../connection-info.js';
import type { Stage, StageControl, Stream } from '../stage.js';
import { ToxicChain } from './chain.js';
import { ControlStage } from './control-stage.js';
import { defaultToxicEnv } from './env.js';
import { parseToxic, type Toxic } from './toxic.js';
import { createToxicStage } from './toxic-stage.js';
import type { ToxicInput } from './typed-toxics.js';

/** The chain entry that holds the listener's toxics. */
const LISTENER = ' listener';
/** The chain entry of the ControlStage (always last). */
const CONTROL = ' control';

/** HeldConnection: what a handle needs of the connection (ProxyContext). */
export interface HeldConnection extends StageControl {
  info(): ConnectionInfo;
}

/** ConnectionHandle is one connection a test holds: its faults and its events. */
export interface ConnectionHandle {
  /** id is the connection's id (as `proxy.connections()` and the admin API show it). */
  readonly id: string;
  /** info describes the connection now. */
  info(): ConnectionInfo;
  /**
   * pause holds the bytes of one direction (`upstream`: client → target, `downstream`:
   * target → client), in order, until resume; the sender is held back by TCP
   * backpressure once the proxy holds 64 KiB. A FIN waits behind the held bytes.
   */
  pause(stream: Stream): void;
  /** resume lets what pause held go on, in order, and relays that direction again. */
  resume(stream: Stream): void;
  /**
   * cutAfter lets exactly `n` more bytes of `stream` through, then closes the
   * connection (a FIN both ways, cause `toxic`). 0 closes it now.
   */
  cutAfter(stream: Stream, n: number): void;
  /** reset closes the connection now with a reset (RST) both ways, cause `toxic`. */
  reset(): void;
  /** close closes the connection now with a FIN both ways, cause `toxic`. */
  close(): void;
  /**
   * addToxic puts a toxic into this connection only (after the listener's toxics of
   * that stream, after the ones added here before). Same definition as
   * `proxy.toxics().add`; the name must be new on this connection. Returns the toxic.
   */
  addToxic(toxic: ToxicInput): Toxic;
  /** removeToxic takes a toxic added with addToxic out (what it held goes on); false if none. */
  removeToxic(name: string): boolean;
  /**
   * bytes resolves once `n` bytes of `stream` have passed the proxy on this connection
   * (counted from its start, written on towards the far socket; through pause and
   * toxics, so held bytes are not counted until they go on).
   */
  bytes(stream: Stream, n: number): Promise<void>;
  /** closed resolves, with the close record, when the connection has closed. */
  readonly closed: Promise<ConnectionInfo>;
}

/** Handle implements ConnectionHandle over a relaying connection. */
export class Handle implements ConnectionHandle {
  readonly id: string;
  readonly closed: Promise<ConnectionInfo>;
  readonly #connection: HeldConnection;
  readonly #chains: Record<Stream, ToxicChain>;
  readonly #controls: Record<Stream, ControlStage>;
  readonly #own: Record<Stream, string[]> = { upstream: [], downstream: [] };
  #onClosed: (info: ConnectionInfo) => void = () => {};

  /** The handle puts its chains into both streams of `connection` at once. */
  constructor(connection: HeldConnection) {
    this.id = connection.id;
    this.#connection = connection;
    this.closed = new Promise((resolve) => {
      this.#onClosed = resolve;
    });
    this.#controls = { upstream: new ControlStage(), downstream: new ControlStage() };
    this.#chains = {
      upstream: new ToxicChain([[CONTROL, this.#controls.upstream]]),
      downstream: new ToxicChain([[CONTROL, this.#controls.downstream]]),
    };
    this.stageControl = {
      id: connection.id,
      get closed(): boolean {
        return connection.closed;
      },
      setStage: (stream: Stream, stage: Stage | null) => this.#setListenerStage(stream, stage),
      stageOf: (stream: Stream) => this.#chains[stream].stageOf(LISTENER),
    };
    connection.setStage('upstream', this.#chains.upstream);
    connection.setStage('downstream', this.#chains.downstream);
  }

  /**
   * stageControl is what the listener's ToxicRegistry is given for this connection:
   * its stages go into the first slot of the handle's chains.
   */
  readonly stageControl: StageControl;

  /** settle: the connection closed (the proxy's connectionClose for this id). */
  settle(info: ConnectionInfo): void {
    this.#onClosed(info);
  }

  info(): ConnectionInfo {
    return this.#connection.info();
  }

  pause(stream: Stream): void {
    this.#controls[checkStream(stream)].pause();
  }

  resume(stream: Stream): void {
    this.#controls[checkStream(stream)].resume();
  }

  cutAfter(stream: Stream, n: number): void {
    if (!Number.isSafeInteger(n) || n < 0)
      throw new RangeError(`cutAfter: n must be a whole number >= 0, got ${n}`);
    this.#controls[checkStream(stream)].cutAfter(n);
  }

  reset(): void {
    this.#controls.upstream.close(true);
  }

  close(): void {
    this.#controls.upstream.close(false);
  }

  addToxic(input: ToxicInput): Toxic {
    const toxic = parseToxic(input);
    const own = this.#own[toxic.stream];
    if (own.includes(toxic.name))
      throw new Error(`addToxic: toxic ${JSON.stringify(toxic.name)} exists on this connection`);
    const chain = this.#chains[toxic.stream];
    chain.insert(chain.size - 1, toxic.name, createToxicStage(toxic, defaultToxicEnv()));
    own.push(toxic.name);
    return toxic;
  }

  removeToxic(name: string): boolean {
    for (const stream of ['upstream', 'downstream'] as const) {
      const at = this.#own[stream].indexOf(name);
      if (at < 0) continue;
      this.#own[stream].splice(at, 1);
      this.#chains[stream].remove(name);
      return true;
    }
    return false;
  }

  bytes(stream: Stream, n: number): Promise<void> {
    return this.#controls[checkStream(stream)].whenPassed(n);
  }

  #setListenerStage(stream: Stream, stage: Stage | null): void {
    const chain = this.#chains[stream];
    const there = chain.stageOf(LISTENER) !== null;
    if (stage === null) {
      if (there) chain.remove(LISTENER);
    } else if (there) chain.replace(LISTENER, stage);
    else chain.insert(0, LISTENER, stage);
  }
}

function checkStream(stream: Stream): Stream {
  if (stream !== 'upstream' && stream !== 'downstream')
    throw new TypeError(`stream must be "upstream" or "downstream", got ${String(stream)}`);
  return stream;
}
