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
  return new TopicGrantTable(policy, {}).forModel(model).rulesFor(deviceId);
}

/**
 * A rule template compiled once for every device of a model, matched against a topic with the
 * device's id in place, so a held connection carries no topic state of its own (issue 14: memory
 * per connection; expanded strings and a closure per rule and session were about 1 KiB each).
 */
type TemplateMatcher = (topic: string, deviceId: string) => boolean;

/** The pieces of a template without `+` or `#`: literal text and the places of `{id}`. */
type Pieces = readonly (string | typeof DEVICE_ID)[];
const DEVICE_ID = Symbol('device id');

function pieces(levels: readonly string[], substitute: boolean): Pieces {
  const out: (string | typeof DEVICE_ID)[] = [];
  let literal = '';
  levels.forEach((level, index) => {
    if (index > 0) literal += '/';
    if (!substitute || level !== '{id}') {
      literal += level;
      return;
    }
    if (literal) out.push(literal);
    out.push(DEVICE_ID);
    literal = '';
  });
  if (literal) out.push(literal);
  return out;
}

/** Where the pieces end in `topic` when they match its start, else -1. */
function matchPieces(parts: Pieces, topic: string, deviceId: string): number {
  let offset = 0;
  for (const part of parts) {
    const text = part === DEVICE_ID ? deviceId : part;
    if (!topic.startsWith(text, offset)) return -1;
    offset += text.length;
  }
  return offset;
}

/**
 * `prefix/#` without other wildcards (the common `devices/{id}/#`) and wildcard-free filters
 * become comparisons in place; anything else expands the template and goes through
 * {@link topicMatches} (rare in configurations, and it allocates only for those).
 */
function compileTemplate(template: string, model: string | undefined): TemplateMatcher {
  const substitute = model !== undefined;
  const levels = template.split('/').map((level) => (substitute && level === '{model}' ? model : level));
  const wildcardFree = (list: readonly string[]): boolean => list.every((level) => level !== '+' && level !== '#');
  if (levels.at(-1) === '#' && levels.length > 1 && wildcardFree(levels.slice(0, -1)) && !(levels[0] ?? '').startsWith('$')) {
    const head = pieces(levels.slice(0, -1), substitute);
    return (topic, deviceId) => {
      const end = matchPieces(head, topic, deviceId);
      return end !== -1 && (end === topic.length || topic.charCodeAt(end) === 0x2f);
    };
  }
  if (wildcardFree(levels)) {
    const whole = pieces(levels, substitute);
    return (topic, deviceId) => matchPieces(whole, topic, deviceId) === topic.length;
  }
  if (!substitute) return (topic) => topicMatches(template, topic);
  return (topic, deviceId) => topicMatches(levels.map((level) => (level === '{id}' ? deviceId : level)).join('/'), topic);
}

/**
 * The topic rules of one model (`{id}` and `{model}` substituted) or of one backend service
 * (`model` undefined: its filters are literal), compiled once and shared by its sessions.
 */
export class TopicGrants {
  private readonly publish: readonly TemplateMatcher[];
  private readonly receive: readonly TemplateMatcher[];

  constructor(private readonly templates: DeviceTopicRules, private readonly model: string | undefined) {
    this.publish = templates.publish.map((template) => compileTemplate(template, model));
    this.receive = templates.subscribe.map((template) => compileTemplate(template, model));
  }

  /** Whether `deviceId` may publish to `topic` (checked for every message). */
  mayPublish(topic: string, deviceId: string): boolean {
    return this.publish.some((matches) => matches(topic, deviceId));
  }

  /** Whether `deviceId` may receive a message on `topic` (checked for every delivery). */
  mayReceive(topic: string, deviceId: string): boolean {
    return this.receive.some((matches) => matches(topic, deviceId));
  }

  /** The filters with the device substituted (SUBSCRIBE and will checks: once per packet, not per message). */
  rulesFor(deviceId: string): DeviceTopicRules {
    const model = this.model;
    if (model === undefined) return this.templates;
    const expand = (filters: readonly string[]): string[] =>
      filters.map((filter) => filter.split('/').map((level) => (level === '{id}' ? deviceId : level === '{model}' ? model : level)).join('/'));
    return { publish: expand(this.templates.publish), subscribe: expand(this.templates.subscribe) };
  }
}

/**
 * The compiled grants of every model and service, made on first use: a broker's topic policy and
 * services never change while it runs (config.json is read at start).
 */
export class TopicGrantTable {
  private readonly models = new Map<string, TopicGrants>();
  private readonly services = new Map<string, TopicGrants>();

  constructor(
    private readonly policy: TopicPolicy,
    private readonly serviceRules: Readonly<Record<string, DeviceTopicRules>>,
  ) {}

  forModel(model: string): TopicGrants {
    let grants = this.models.get(model);
    if (!grants) {
      const extra = this.policy.models[model] ?? {};
      grants = new TopicGrants(
        { publish: [...this.policy.default.publish, ...(extra.publish ?? [])], subscribe: [...this.policy.default.subscribe, ...(extra.subscribe ?? [])] },
        model,
      );
      this.models.set(model, grants);
    }
    return grants;
  }

  /** A service's rules, or undefined for a service config.json does not name. */
  forService(service: string): TopicGrants | undefined {
    const rules = this.serviceRules[service];
    if (!rules) return undefined;
    let grants = this.services.get(service);
    if (!grants) {
      // Service rules are literal filters: `{id}` and `{model}` mean nothing there.
      grants = new TopicGrants(rules, undefined);
      this.services.set(service, grants);
    }
    return grants;
  }
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
