import test from 'ava';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { ConcurrencyGate, SourceGate } from '../server/src/enrollment/admission.ts';
import { RefusalLog } from '../server/src/enrollment/refusal-log.ts';

test('SourceGate: at most `limit` in progress per address, released once, forgotten when idle', (t) => {
  const gate = new SourceGate(2);
  const a1 = gate.tryAcquire('127.0.0.2');
  const a2 = gate.tryAcquire('127.0.0.2');
  t.truthy(a1 && a2);
  t.is(gate.tryAcquire('127.0.0.2'), undefined, 'third from the same address refused');
  t.truthy(gate.tryAcquire('127.0.0.1'), 'another address is not affected');
  a1?.();
  a1?.(); // a second release changes nothing
  const a3 = gate.tryAcquire('127.0.0.2');
  t.truthy(a3);
  t.is(gate.tryAcquire('127.0.0.2'), undefined);
});

test('ConcurrencyGate: slots are counted and given back exactly once', (t) => {
  const gate = new ConcurrencyGate(1);
  const release = gate.tryAcquire();
  t.is(gate.inUse, 1);
  t.is(gate.tryAcquire(), undefined);
  release?.();
  release?.();
  t.is(gate.inUse, 0);
  t.truthy(gate.tryAcquire());
});

test('RefusalLog: lines beyond the rate are counted and reported with the next line', (t) => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  let now = 0;
  const log = new RefusalLog(pino({ level: 'info' }, sink), 2, () => now);
  const entry = { operation: 'simpleenroll', code: 'ENROLL_CLIENT_CERT_REQUIRED', reason: 'no certificate', peer: '127.0.0.1' };
  for (let index = 0; index < 100; index++) log.refused(entry);
  t.is(lines.length, 2, 'a burst of 100 gives 2 lines');
  now += 1000; // one second later: two more tokens
  log.refused(entry);
  t.is(lines.length, 3);
  t.is(lines[2]?.suppressed, 98);
  t.is(lines[2]?.code, 'ENROLL_CLIENT_CERT_REQUIRED');
});
