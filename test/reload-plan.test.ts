/**
 * The reload plan (src/reload-plan.ts) from listener configs alone, no sockets: which
 * listeners a reload keeps, updates in place, moves, renames, adds, removes and retires,
 * and what the admin API's change of one listener does.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import { type ListenerConfig, resolveOptions } from '../src/config/config.js';
import {
  type Placement,
  type PlannedListener,
  planChange,
  planReload,
} from '../src/reload-plan.js';

/** A running listener as the plan sees it: a config, maybe an inherited socket. */
class Running implements PlannedListener {
  constructor(
    readonly config: ListenerConfig,
    readonly inheritedFd: number | undefined = undefined,
  ) {}
  sameConfig(config: ListenerConfig): boolean {
    return isDeepStrictEqual(this.config, config);
  }
}

type Spec = { name: string; listen: string; targets?: string[] };

function configs(...specs: Spec[]): readonly ListenerConfig[] {
  const listeners = specs.map((s) => ({ targets: ['127.0.0.1:9'], ...s }));
  return resolveOptions({ listeners }).listeners;
}

function running(...specs: Spec[]): Running[] {
  return configs(...specs).map((c) => new Running(c));
}

/** describe writes each placement as a short string: "same:a", "moved:a", "new:b". */
function describe(placements: Placement<Running>[]): string[] {
  return placements.map((p) =>
    p.kind === 'same' ? `same:${p.listener.config.name}` : `${p.kind}:${p.config.name}`,
  );
}

const names = (listeners: Running[]) => listeners.map((l) => l.config.name);

test('keeps a listener whose config is the same, and reports nothing', () => {
  const old = running({ name: 'a', listen: '127.0.0.1:7001' });
  const plan = planReload(old, new Set(), configs({ name: 'a', listen: '127.0.0.1:7001' }));
  assert.deepEqual(plan.result, { added: [], removed: [], changed: [] });
  assert.deepEqual(describe(plan.placements), ['same:a']);
  assert.equal(plan.placements[0]?.kind === 'same' && plan.placements[0].listener, old[0]);
  assert.deepEqual(plan.update, []);
  assert.deepEqual(plan.retire, []);
});

test('updates in place a listener whose targets changed on the same address', () => {
  const old = running({ name: 'a', listen: '127.0.0.1:7001' });
  const fresh = configs({ name: 'a', listen: '127.0.0.1:7001', targets: ['127.0.0.1:10'] });
  const plan = planReload(old, new Set(), fresh);
  assert.deepEqual(plan.result, { added: [], removed: [], changed: ['a'] });
  assert.deepEqual(describe(plan.placements), ['same:a']);
  assert.deepEqual(plan.update, [[old[0], fresh[0]]]);
  assert.deepEqual(plan.retire, []);
});

test('moves a listener whose address changed: a new one there, the old one retires', () => {
  const old = running({ name: 'a', listen: '127.0.0.1:7001' });
  const plan = planReload(old, new Set(), configs({ name: 'a', listen: '127.0.0.1:7002' }));
  assert.deepEqual(plan.result, { added: [], removed: [], changed: ['a'] });
  assert.deepEqual(describe(plan.placements), ['moved:a']);
  assert.equal(plan.placements[0]?.kind === 'moved' && plan.placements[0].from, old[0]);
  assert.deepEqual(plan.update, []);
  assert.deepEqual(plan.retire, old);
});

test('updates in place an inherited socket whose listen changed, never moves it', () => {
  const [config] = configs({ name: 'a', listen: '127.0.0.1:7001' });
  assert.ok(config);
  const old = [new Running(config, 3)];
  const fresh = configs({ name: 'a', listen: '127.0.0.1:7002' });
  const plan = planReload(old, new Set(), fresh);
  assert.deepEqual(describe(plan.placements), ['same:a']);
  assert.deepEqual(plan.update, [[old[0], fresh[0]]]);
  assert.deepEqual(plan.retire, []);
});

test('adds new names and retires the names no longer configured, in order', () => {
  const old = running(
    { name: 'a', listen: '127.0.0.1:7001' },
    { name: 'b', listen: '127.0.0.1:7002' },
  );
  const fresh = configs(
    { name: 'c', listen: '127.0.0.1:7003' },
    { name: 'b', listen: '127.0.0.1:7002' },
  );
  const plan = planReload(old, new Set(), fresh);
  assert.deepEqual(plan.result, { added: ['c'], removed: ['a'], changed: [] });
  assert.deepEqual(describe(plan.placements), ['new:c', 'same:b']);
  assert.deepEqual(names(plan.retire), ['a']);
});

test("a new name on a removed listener's address is a rename: the socket stays, updated", () => {
  const old = running({ name: 'a', listen: '127.0.0.1:7001' });
  const fresh = configs({ name: 'b', listen: '127.0.0.1:7001' });
  const plan = planReload(old, new Set(), fresh);
  assert.deepEqual(plan.result, { added: ['b'], removed: ['a'], changed: [] });
  assert.deepEqual(describe(plan.placements), ['same:a']);
  assert.deepEqual(plan.update, [[old[0], fresh[0]]]);
  assert.deepEqual(plan.retire, []);
});

test('port 0 is never a rename: two "any port" addresses are not the same', () => {
  const old = running({ name: 'a', listen: '127.0.0.1:0' });
  const plan = planReload(old, new Set(), configs({ name: 'b', listen: '127.0.0.1:0' }));
  assert.deepEqual(plan.result, { added: ['b'], removed: ['a'], changed: [] });
  assert.deepEqual(describe(plan.placements), ['new:b']);
  assert.deepEqual(names(plan.retire), ['a']);
});

test('retires moved listeners before removed ones', () => {
  const old = running(
    { name: 'gone', listen: '127.0.0.1:7001' },
    { name: 'a', listen: '127.0.0.1:7002' },
  );
  const plan = planReload(old, new Set(), configs({ name: 'a', listen: '127.0.0.1:7003' }));
  assert.deepEqual(names(plan.retire), ['a', 'gone']);
  assert.deepEqual(plan.result, { added: [], removed: ['gone'], changed: ['a'] });
});

test('keeps admin API listeners the file does not name; takes over those it names', () => {
  const old = running(
    { name: 'file', listen: '127.0.0.1:7001' },
    { name: 'api', listen: '127.0.0.1:7002' },
    { name: 'named', listen: '127.0.0.1:7003' },
  );
  const fresh = configs({ name: 'named', listen: '127.0.0.1:7003', targets: ['127.0.0.1:10'] });
  const plan = planReload(old, new Set(['api', 'named']), fresh);
  assert.deepEqual(names(plan.kept), ['api']);
  assert.deepEqual(plan.result, { added: [], removed: ['file'], changed: ['named'] });
  assert.deepEqual(names(plan.retire), ['file']);
});

/** A running listener for planChange: a config and the address it is bound to. */
function bound(spec: Spec, port: number | null) {
  const [config] = configs(spec);
  assert.ok(config);
  const address = () => (port === null ? null : { address: '127.0.0.1', family: 'IPv4', port });
  return { config, address };
}

test('planChange: the address a port-0 listener got is no move; another port is', () => {
  const listener = bound({ name: 'a', listen: '127.0.0.1:0' }, 7005);
  assert.equal(planChange(listener, { listen: '127.0.0.1:7005' }).moved, false);
  assert.equal(planChange(listener, { listen: 7005 }).moved, true);
  const other = planChange(listener, { listen: '127.0.0.1:7006' });
  assert.equal(other.moved, true);
  assert.equal(other.fresh.listen.port, 7006);
  assert.equal(planChange(listener, { listen: '127.0.0.1:0' }).moved, true);
  assert.equal(planChange(listener, { targets: ['127.0.0.1:10'] }).moved, false);
  // Port 0 asks for a new port, even of a listener not bound (disabled) on port 0.
  const unbound = bound({ name: 'b', listen: '127.0.0.1:0' }, null);
  assert.equal(planChange(unbound, { listen: '127.0.0.1:0' }).moved, true);
});

test('planChange: other targets retarget, the same ones in the same order do not', () => {
  const listener = bound({ name: 'a', listen: '127.0.0.1:7001', targets: ['127.0.0.1:9'] }, 7001);
  assert.equal(planChange(listener, { targets: ['127.0.0.1:9'] }).retarget, false);
  const other = planChange(listener, { targets: ['127.0.0.1:9', '127.0.0.1:10'] });
  assert.equal(other.retarget, true);
  assert.deepEqual(
    other.fresh.targets.map((t) => t.address),
    ['127.0.0.1:9', '127.0.0.1:10'],
  );
  assert.equal(planChange(listener, { enabled: false }).retarget, false);
  assert.equal(planChange(listener, { enabled: false }).fresh.listen.port, 7001);
});
