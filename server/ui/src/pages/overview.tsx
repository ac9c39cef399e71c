/** @jsxImportSource preact */
import { useEffect, useState } from 'preact/hooks';
import { api, type Overview } from '../api.ts';
import { CountBars, MinuteChart } from '../components/charts.tsx';
import { ErrorBox } from '../components/common.tsx';
import { deviceHref, shortTime } from '../format.ts';

/** How often the overview reads the counts again. */
const REFRESH_MS = 5_000;

function sumBy(entries: readonly { state: string; model: string; count: number }[], key: 'state' | 'model'): { name: string; count: number }[] {
  const totals = new Map<string, number>();
  for (const entry of entries) totals.set(entry[key], (totals.get(entry[key]) ?? 0) + entry.count);
  return [...totals].map(([name, count]) => ({ name, count })).sort((a, b) => b.count - a.count || a.name.localeCompare(b.name));
}

/** Devices by state and model, connected now, rates per minute, refusals by code, certificates expiring within 7 days. */
export function OverviewPage() {
  const [overview, setOverview] = useState<Overview>();
  const [error, setError] = useState<unknown>();
  useEffect(() => {
    let stopped = false;
    const load = (): void => {
      api.overview().then(
        (value) => { if (!stopped) { setOverview(value); setError(undefined); } },
        (failure: unknown) => { if (!stopped) setError(failure); },
      );
    };
    load();
    const timer = setInterval(load, REFRESH_MS);
    return () => { stopped = true; clearInterval(timer); };
  }, []);
  if (!overview) return <section><h2>Overview</h2><ErrorBox error={error} />{error ? null : <p>Loading…</p>}</section>;
  const { summary, rates, expiring } = overview;
  return (
    <section aria-labelledby="overview-title">
      <h2 id="overview-title">Overview</h2>
      <ErrorBox error={error} />
      <div class="grid">
        <div class="card">
          <h3>Devices</h3>
          <p class="big" data-testid="total-devices">{summary.total}</p>
        </div>
        <div class="card">
          <h3>Connected now</h3>
          <p class="big" data-testid="connected-now">{summary.connected}</p>
        </div>
        <div class="card">
          <h3>Certificates expiring in 7 days</h3>
          <p class="big" data-testid="expiring-count">{expiring.devices.length}{expiring.more ? '+' : ''}</p>
        </div>
      </div>
      <div class="grid">
        <div class="card" data-testid="by-state">
          <h3>By state</h3>
          <CountBars label="Devices by state" rows={sumBy(summary.devices, 'state')} />
        </div>
        <div class="card" data-testid="by-model">
          <h3>By model</h3>
          <CountBars label="Devices by model" rows={sumBy(summary.devices, 'model')} />
        </div>
        <div class="card" data-testid="refusals-by-code">
          <h3>Refusals by code (last hour)</h3>
          <CountBars label="Refusals by code" rows={rates.refusalsByCode.map((entry) => ({ name: entry.code, count: entry.count }))} />
        </div>
      </div>
      <div class="grid">
        <MinuteChart label="Enrollments per minute" kind="enrolled" minutes={rates.minutes} values={rates.enrolled} />
        <MinuteChart label="Renewals per minute" kind="renewed" minutes={rates.minutes} values={rates.renewed} />
        <MinuteChart label="Refusals per minute" kind="refused" minutes={rates.minutes} values={rates.refused} />
      </div>
      <h3>Certificates expiring before {shortTime(expiring.before)}</h3>
      {expiring.devices.length === 0 ? (
        <p class="muted">None.</p>
      ) : (
        <div class="table-wrap">
          <table data-testid="expiring">
            <thead><tr><th scope="col">Device</th><th scope="col">Model</th><th scope="col">Expires</th></tr></thead>
            <tbody>
              {expiring.devices.slice(0, 50).map((device) => (
                <tr><td><a href={deviceHref(device.id)}>{device.id}</a></td><td>{device.model}</td><td>{shortTime(device.certNotAfter)}</td></tr>
              ))}
            </tbody>
          </table>
          {expiring.devices.length > 50 ? <p class="muted">The first 50 are shown; <a href="#/devices">Devices</a> lists them all.</p> : null}
        </div>
      )}
    </section>
  );
}
