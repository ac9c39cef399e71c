/**
 * A reader of the Prometheus text exposition format (version 0.0.4), enough for what the
 * simulator needs from a fleetgate `/metrics`: sample lines with labels and a value. Written here
 * rather than taken from npm: parse-prometheus-text-format (1.1.1, published 2024-12) ships no
 * TypeScript types (none on DefinitelyTyped either) and brings a dependency to turn the text into
 * nested metric families the simulator does not need; prom-client writes the format but does
 * not read it. The format is small, and this module is tested on its own
 * (test/simulator-clock.test.ts).
 * https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
 */

/** One sample line: `name{label="value",...} value [timestamp]`. */
export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*/;

/** A sample value: a float, or `+Inf`, `-Inf`, `NaN` as the format writes them. */
function parseValue(text: string): number | undefined {
  if (text === '+Inf' || text === 'Inf') return Number.POSITIVE_INFINITY;
  if (text === '-Inf') return Number.NEGATIVE_INFINITY;
  if (text === 'NaN') return Number.NaN;
  const value = Number(text);
  return text !== '' && !Number.isNaN(value) ? value : undefined;
}

/** Reads `{a="x",b="y"}` from `line` at `start` (the `{`); returns the labels and where they end. */
function parseLabels(line: string, start: number): { labels: Record<string, string>; end: number } | undefined {
  const labels: Record<string, string> = {};
  let index = start + 1;
  for (;;) {
    while (line[index] === ' ' || line[index] === ',') index++;
    if (line[index] === '}') return { labels, end: index + 1 };
    const name = /^[a-zA-Z_][a-zA-Z0-9_]*/.exec(line.slice(index))?.[0];
    if (!name || line[index + name.length] !== '=' || line[index + name.length + 1] !== '"') return undefined;
    index += name.length + 2;
    let value = '';
    for (;;) {
      const char = line[index];
      if (char === undefined) return undefined;
      index++;
      if (char === '"') break;
      if (char === '\\') {
        const escaped = line[index++];
        value += escaped === 'n' ? '\n' : (escaped ?? '');
      } else value += char;
    }
    labels[name] = value;
  }
}

/** Every sample of an exposition; lines it cannot read (and comments) are skipped. */
export function parsePrometheusText(text: string): PromSample[] {
  const samples: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const name = NAME.exec(line)?.[0];
    if (!name) continue;
    let labels: Record<string, string> = {};
    let rest = line.slice(name.length);
    if (rest.startsWith('{')) {
      const parsed = parseLabels(line, name.length);
      if (!parsed) continue;
      labels = parsed.labels;
      rest = line.slice(parsed.end);
    }
    const value = parseValue(rest.trim().split(/\s+/)[0] ?? '');
    if (value === undefined) continue;
    samples.push({ name, labels, value });
  }
  return samples;
}
