import type { TopicPolicy } from '../config/config.ts';

/** The topic filters one device may use, with its id and model substituted. */
export interface DeviceTopicRules {
  readonly publish: readonly string[];
  readonly subscribe: readonly string[];
}

/**
 * Substitutes a device into the templates: `{id}` and `{model}` only ever stand for a whole
 * topic level, and device ids cannot contain `/`, `+` or `#` (DEVICE_ID_PATTERN), so a device
 * cannot widen its own rules through its name.
 */
export function rulesForDevice(policy: TopicPolicy, deviceId: string, model: string): DeviceTopicRules {
  const extra = policy.models[model] ?? {};
  const expand = (filters: readonly string[]): string[] =>
    filters.map((filter) => filter.split('/').map((level) => (level === '{id}' ? deviceId : level === '{model}' ? model : level)).join('/'));
  return {
    publish: expand([...policy.default.publish, ...(extra.publish ?? [])]),
    subscribe: expand([...policy.default.subscribe, ...(extra.subscribe ?? [])]),
  };
}

/**
 * A filter compiled for the per-message check: `prefix/#` without other wildcards (the common
 * `devices/<id>/#`) becomes a string comparison; anything else goes through {@link topicMatches}.
 */
export type TopicMatcher = (topic: string) => boolean;

export function compileFilter(filter: string): TopicMatcher {
  const head = filter.slice(0, -2);
  if (filter.endsWith('/#') && !/[#+]/.test(head) && !head.startsWith('$')) {
    const prefix = `${head}/`;
    return (topic) => topic.startsWith(prefix) || topic === head;
  }
  if (!/[#+]/.test(filter)) return (topic) => topic === filter;
  return (topic) => topicMatches(filter, topic);
}

/** Whether a concrete topic matches a filter (MQTT 3.1.1 §4.7, `$` topics excluded from wildcards at the first level, MQTT-4.7.2-1). */
export function topicMatches(filter: string, topic: string): boolean {
  const filterLevels = filter.split('/');
  const topicLevels = topic.split('/');
  if (topic.startsWith('$') && (filterLevels[0] === '#' || filterLevels[0] === '+')) return false;
  for (let index = 0; index < filterLevels.length; index++) {
    const level = filterLevels[index];
    if (level === '#') return true; // matches the parent level too (MQTT-4.7.1-2)
    if (index >= topicLevels.length) return false;
    if (level !== '+' && level !== topicLevels[index]) return false;
  }
  return filterLevels.length === topicLevels.length;
}

/**
 * Whether every topic a subscription `filter` can match is also matched by `allowed`: the
 * subscription stays inside what the rules grant, wildcards included.
 */
export function filterWithin(filter: string, allowed: string): boolean {
  const inner = filter.split('/');
  const outer = allowed.split('/');
  // `$` topics are only granted by a rule that names them (wildcards never reach them, MQTT-4.7.2-1).
  if (filter.startsWith('$') && !allowed.startsWith('$')) return false;
  for (let index = 0; index < inner.length; index++) {
    const want = inner[index] as string;
    const have = outer[index];
    if (have === '#') return true;
    if (have === undefined) return false;
    if (want === '#') return false; // the rule has a finite depth here
    if (want === '+') {
      if (have !== '+') return false;
      continue;
    }
    if (have !== '+' && have !== want) return false;
  }
  // The filter ended: it matches topics of exactly this depth; the rule must match them too,
  // either by having the same depth or by a trailing `#` (which matches its parent level).
  return outer.length === inner.length || (outer.length === inner.length + 1 && outer[inner.length] === '#');
}

/** Validation of a topic name or filter; returns a reason when it is not acceptable. */
export function topicProblem(topic: string, kind: 'name' | 'filter', maxLevels: number): string | undefined {
  if (topic.length === 0) return 'empty topic';
  if (topic.includes('\u0000')) return 'topic contains a null character';
  let levels = 1;
  for (let index = topic.indexOf('/'); index !== -1; index = topic.indexOf('/', index + 1)) levels++;
  if (levels > maxLevels) return `topic has ${levels} levels; at most ${maxLevels} are allowed`;
  if (kind === 'name' && /[#+]/.test(topic)) return 'wildcards are not allowed in a topic name';
  return undefined;
}
