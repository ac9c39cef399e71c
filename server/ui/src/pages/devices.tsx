/** @jsxImportSource preact */
import { useEffect, useState } from 'preact/hooks';
import type { DevicePage } from '../../../src/admin/wire.ts';
import { api } from '../api.ts';
import { ErrorBox, StateBadge } from '../components/common.tsx';
import { deviceHref, shortTime } from '../format.ts';

const PAGE_SIZE = 50;
const STATES = ['provisioned', 'enrolled', 'disabled', 'revoked'];

/** The orders the admin API serves (`sort`), by column. */
type SortKey = 'id' | 'model' | 'state' | 'expires';
type Filter = { prefix: string; state: string; model: string; sort: SortKey; order: 'asc' | 'desc' };

/**
 * A column header that sorts by its column: a first click ascending, the next one the other way.
 * aria-sort tells a screen reader which column orders the table.
 */
function SortHeader(props: { label: string; column: SortKey; filter: Filter; apply: (change: Partial<Filter>) => void; class?: string }) {
  const { label, column, filter, apply } = props;
  const active = filter.sort === column;
  const next = active && filter.order === 'asc' ? 'desc' : 'asc';
  return (
    <th scope="col" class={props.class} aria-sort={active ? (filter.order === 'asc' ? 'ascending' : 'descending') : undefined}>
      <button type="button" class="sort" data-sort={column} onClick={() => apply({ sort: column, order: next })}>
        {label} {active ? (filter.order === 'asc' ? '▲' : '▼') : ''}
        <span class="visually-hidden">{active ? ' (sort the other way)' : ` (sort by ${label.toLowerCase()})`}</span>
      </button>
    </th>
  );
}

/**
 * The device list: filtered, sorted (by id, model, state or certificate expiry) and paginated by
 * the admin API with a cursor, so the page reads one page of devices whatever the fleet's size.
 * "Previous" goes back through the cursors already seen.
 */
export function DevicesPage() {
  const [prefixInput, setPrefixInput] = useState('');
  const [filter, setFilter] = useState<Filter>({ prefix: '', state: '', model: '', sort: 'id', order: 'asc' });
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  const [page, setPage] = useState<DevicePage>();
  const [models, setModels] = useState<string[]>([]);
  const [error, setError] = useState<unknown>();
  const after = cursors.at(-1);

  useEffect(() => {
    api.summary().then((summary) => setModels([...new Set(summary.devices.map((entry) => entry.model))].sort()), () => undefined);
  }, []);
  useEffect(() => {
    let stopped = false;
    setError(undefined);
    api.devices({ ...filter, after, limit: PAGE_SIZE }).then(
      (value) => { if (!stopped) setPage(value); },
      (failure: unknown) => { if (!stopped) { setError(failure); setPage(undefined); } },
    );
    return () => { stopped = true; };
  }, [filter, after]);

  const apply = (change: Partial<Filter>): void => {
    setFilter({ ...filter, ...change });
    setCursors([undefined]);
  };
  return (
    <section aria-labelledby="devices-title">
      <h2 id="devices-title">Devices</h2>
      <form class="filters" role="search" onSubmit={(event) => { event.preventDefault(); apply({ prefix: prefixInput.trim().toLowerCase() }); }}>
        <label>
          Device id starts with
          <input name="prefix" type="search" value={prefixInput} autocomplete="off" spellcheck={false} onInput={(event) => setPrefixInput(event.currentTarget.value)} />
        </label>
        <button type="submit" class="primary">Search</button>
        <label>
          Model
          <select name="model" value={filter.model} onChange={(event) => apply({ model: event.currentTarget.value })}>
            <option value="">any</option>
            {models.map((model) => <option value={model}>{model}</option>)}
          </select>
        </label>
        <label>
          State
          <select name="state" value={filter.state} onChange={(event) => apply({ state: event.currentTarget.value })}>
            <option value="">any</option>
            {STATES.map((state) => <option value={state}>{state}</option>)}
          </select>
        </label>
      </form>
      <ErrorBox error={error} />
      {page ? (
        <>
          <div class="table-wrap">
            <table data-testid="device-table">
              <thead>
                <tr>
                  <SortHeader label="Device id" column="id" filter={filter} apply={apply} />
                  <SortHeader label="Model" column="model" filter={filter} apply={apply} />
                  <SortHeader label="State" column="state" filter={filter} apply={apply} />
                  <th scope="col">Online</th>
                  <SortHeader label="Certificate expires" column="expires" filter={filter} apply={apply} class="hide-narrow" />
                  <th scope="col" class="hide-narrow">Last seen</th>
                </tr>
              </thead>
              <tbody>
                {page.devices.map((device) => {
                  const presence = page.presence?.[device.id];
                  return (
                    <tr data-device={device.id}>
                      <td><a href={deviceHref(device.id)}>{device.id}</a></td>
                      <td>{device.model}</td>
                      <td><StateBadge state={device.state} /></td>
                      <td>{presence?.connected ? <span class="online">online</span> : 'offline'}</td>
                      <td class="hide-narrow">{shortTime(device.certNotAfter)}</td>
                      <td class="hide-narrow">{shortTime(presence?.lastSeen)}</td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
          {page.devices.length === 0 ? <p class="muted">No device matches.</p> : null}
          <nav class="pager" aria-label="Pages">
            <button type="button" disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
            <span class="muted">Page {cursors.length}</span>
            <button type="button" disabled={page.next === undefined} onClick={() => setCursors([...cursors, page.next])}>Next</button>
          </nav>
        </>
      ) : error ? null : <p>Loading…</p>}
    </section>
  );
}
