import test from 'ava';
import { DEFAULT_CONFIG, mergeConfig, ConfigError } from '../server/src/config/config.ts';
import { filterWithin, rulesForDevice, TopicGrantTable, topicMatches, topicProblem } from '../server/src/broker/topic-acl.ts';

test('topicMatches follows MQTT 3.1.1 §4.7', (t) => {
  t.true(topicMatches('devices/a/#', 'devices/a'));
  t.true(topicMatches('devices/a/#', 'devices/a/x/y'));
  t.false(topicMatches('devices/a/#', 'devices/ab/x'));
  t.true(topicMatches('devices/+/telemetry', 'devices/a/telemetry'));
  t.false(topicMatches('devices/+/telemetry', 'devices/a/b/telemetry'));
  t.false(topicMatches('devices/a/x', 'devices/a/x/y'));
  t.false(topicMatches('#', '$SYS/broker/uptime'), 'wildcards never reach $ topics');
  t.false(topicMatches('+/broker', '$SYS/broker'));
  t.true(topicMatches('$SYS/#', '$SYS/broker'));
});

test('filterWithin: a subscription stays inside a rule, wildcards included', (t) => {
  const rule = 'devices/a/#';
  t.true(filterWithin('devices/a/#', rule));
  t.true(filterWithin('devices/a', rule), '# matches its parent level');
  t.true(filterWithin('devices/a/+/x', rule));
  t.true(filterWithin('devices/a/+', rule));
  t.false(filterWithin('devices/+/x', rule), 'another device could match');
  t.false(filterWithin('devices/#', rule));
  t.false(filterWithin('#', rule));
  t.false(filterWithin('+/a/x', rule));
  t.false(filterWithin('$SYS/#', '#'), '$ topics need a rule that names them');
  t.true(filterWithin('fleet/thermostat/commands', 'fleet/thermostat/commands'));
  t.false(filterWithin('fleet/thermostat/#', 'fleet/thermostat/commands'));
  t.false(filterWithin('fleet/thermostat/commands/x', 'fleet/thermostat/commands'));
  t.true(filterWithin('devices/x/telemetry', 'devices/+/telemetry'));
  t.true(filterWithin('devices/+/telemetry', 'devices/+/telemetry'));
  t.false(filterWithin('devices/#', 'devices/+/telemetry'));
});

test('rules substitute the device id and model and add what the model grants', (t) => {
  const thermostat = rulesForDevice(DEFAULT_CONFIG.broker.topics, 'thermostat-1', 'thermostat');
  t.deepEqual(thermostat.subscribe, ['devices/thermostat-1/#', 'fleet/thermostat/commands']);
  t.deepEqual(thermostat.publish, ['devices/thermostat-1/#']);
  const camera = rulesForDevice(DEFAULT_CONFIG.broker.topics, 'camera-1', 'camera');
  t.deepEqual(camera.publish, ['devices/camera-1/#', 'devices/camera-1/events/#']);
  const custom = rulesForDevice({ default: { publish: ['{model}/{id}/up'], subscribe: [] }, models: {} }, 'car-9', 'car');
  t.deepEqual(custom.publish, ['car/car-9/up']);
});

test('compiled grants, shared by a model, decide exactly as the expanded filters do', (t) => {
  const policy = {
    default: { publish: ['devices/{id}/#', '{model}/{id}/up', 'shared/{id}'], subscribe: ['devices/{id}/#', 'fleet/{model}/commands', 'a/+/{id}/#', '$ota/{id}/#'] },
    models: { car: { publish: ['cars/{id}/+/gps'] } },
  };
  const table = new TopicGrantTable(policy, { backend: { publish: ['devices/{id}/x'], subscribe: ['devices/+/#', '#'] } });
  const topics = [
    'devices/car-9', 'devices/car-9/', 'devices/car-9/x/y', 'devices/car-90/x', 'devices/car-', 'devices/car-9x', 'devices', 'devices/',
    'car/car-9/up', 'car/car-9/up/more', 'car/car-8/up', 'thermostat/car-9/up', 'shared/car-9', 'shared/car-9/x',
    'fleet/car/commands', 'fleet/thermostat/commands', 'a/b/car-9', 'a/b/car-9/z', 'a/b/c/car-9', '$ota/car-9/fw', 'cars/car-9/s1/gps', 'cars/car-9/gps',
    'devices/{id}/x',
  ];
  for (const [model, id] of [['car', 'car-9'], ['thermostat', 'car-9'], ['car', 'car-8']] as const) {
    const grants = table.forModel(model);
    t.is(table.forModel(model), grants, 'one compiled set per model');
    const expanded = rulesForDevice(policy, id, model);
    t.deepEqual(grants.rulesFor(id), expanded);
    for (const topic of topics) {
      t.is(grants.mayPublish(topic, id), expanded.publish.some((filter) => topicMatches(filter, topic)), `${model} ${id} publish ${topic}`);
      t.is(grants.mayReceive(topic, id), expanded.subscribe.some((filter) => topicMatches(filter, topic)), `${model} ${id} receive ${topic}`);
    }
  }
  // A service's filters are literal: {id} is the text "{id}", never a device's id.
  const backend = table.forService('backend');
  t.truthy(backend);
  t.true(backend?.mayPublish('devices/{id}/x', 'backend:1'));
  t.false(backend?.mayPublish('devices/backend:1/x', 'backend:1'));
  t.true(backend?.mayReceive('devices/a/b', 'backend:1'));
  t.false(backend?.mayReceive('$SYS/x', 'backend:1'), '# does not reach $ topics');
  t.is(table.forService('nobody'), undefined);
});

test('topicProblem: empty, null characters, wildcards in names, too deep', (t) => {
  t.is(topicProblem('devices/a/x', 'name', 8), undefined);
  t.regex(topicProblem('', 'name', 8) ?? '', /empty/);
  t.regex(topicProblem('devices/\u0000', 'name', 8) ?? '', /null/);
  t.regex(topicProblem('devices/+/x', 'name', 8) ?? '', /wildcards/);
  t.is(topicProblem('devices/+/x', 'filter', 8), undefined);
  t.regex(topicProblem('a/b/c/d/e', 'filter', 4) ?? '', /5 levels/);
});

test('topic templates in the configuration are validated', (t) => {
  const bad = (publish: string[]): unknown => mergeConfig({ broker: { topics: { default: { publish } } } });
  for (const filter of ['devices/#/x', 'devices/{id}x', 'devices/a+', 'devices/{name}']) {
    const error = t.throws(() => bad([filter]));
    t.true(error instanceof ConfigError, filter);
  }
  t.notThrows(() => bad(['devices/{id}/#', 'fleet/{model}/+', '#']));
  t.throws(() => mergeConfig({ broker: { services: { 'Bad Name': { publish: [] } } } }), { instanceOf: ConfigError });
  t.throws(() => mergeConfig({ broker: { limits: { maxConnections: -1 } } }), { instanceOf: ConfigError });
  t.throws(() => mergeConfig({ broker: { limits: { unknown: 1 } } }), { instanceOf: ConfigError });
});
